//! A report as data: a list of [`Block`]s (headings, paragraphs, lists, tables,
//! figures) that renders to markdown at any heading depth and link prefix. Each
//! report writes its document beside its markdown (`report.json` beside `report.md`,
//! `report_policies.json` beside `report_policies.md`), so a report that includes
//! another (`rmteach reproduce`) renders the included one's blocks one level down
//! with its links prefixed, instead of editing its markdown.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{io_err, Result};
use crate::records::RecordError;

/// One part of a report. Text holds no headings and no relative links (those are
/// blocks of their own, so that rendering can move them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Block {
    /// A heading (`level` 1 is `#`).
    Heading {
        /// Depth in the report itself.
        level: usize,
        /// The heading's text.
        text: String,
    },
    /// A paragraph (or pre-formatted lines such as a small hand-made table).
    Text {
        /// The markdown text, without a trailing newline.
        text: String,
    },
    /// A bulleted list.
    List {
        /// One markdown text per item.
        items: Vec<String>,
        /// Whether a blank line follows the list.
        spaced: bool,
    },
    /// A table written as `<stem>.{md,csv,json}` beside the report.
    Table {
        /// The table's title (a level-3 heading), escaped; none when untitled.
        title: Option<String>,
        /// Header, rule and rows ([`rmteach::report::Table::markdown_rows`]).
        rows: String,
        /// The stem of its files.
        stem: String,
    },
    /// A figure written as `<stem>.{png,svg}` beside the report.
    Figure {
        /// Alt text of the image.
        caption: String,
        /// The stem of its files.
        stem: String,
    },
}

/// Where a document is rendered: how many levels its headings move down, and the
/// directory (relative to the including report) its files' links are prefixed with.
#[derive(Debug, Clone, Copy, Default)]
pub struct Placement<'a> {
    /// Levels added to every heading.
    pub heading_offset: usize,
    /// Prefix of every link to the report's own files (`None`: as they are).
    pub link_prefix: Option<&'a str>,
}

/// A report: its blocks in order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Document {
    /// The blocks.
    pub blocks: Vec<Block>,
}

impl Document {
    /// Appends a heading.
    pub fn heading(&mut self, level: usize, text: impl Into<String>) {
        self.blocks.push(Block::Heading {
            level,
            text: text.into(),
        });
    }

    /// Appends a paragraph.
    pub fn text(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Text { text: text.into() });
    }

    /// Appends a list followed by a blank line.
    pub fn list(&mut self, items: Vec<String>) {
        self.blocks.push(Block::List {
            items,
            spaced: true,
        });
    }

    /// Appends a table written under `stem`.
    pub fn table(&mut self, table: &rmteach::report::Table, stem: &str) {
        self.blocks.push(Block::Table {
            title: table.markdown_title(),
            rows: table.markdown_rows(),
            stem: stem.to_string(),
        });
    }

    /// Appends a figure written under `stem`.
    pub fn figure(&mut self, caption: &str, stem: &str) {
        self.blocks.push(Block::Figure {
            caption: caption.to_string(),
            stem: stem.to_string(),
        });
    }

    /// The markdown of the document placed at `at`.
    pub fn render(&self, at: Placement<'_>) -> String {
        let link = |file: String| match at.link_prefix {
            Some(prefix) => format!("{prefix}/{file}"),
            None => file,
        };
        let hashes = |level: usize| "#".repeat(level + at.heading_offset);
        let mut md = String::new();
        for block in &self.blocks {
            let _ = match block {
                Block::Heading { level, text } => writeln!(md, "{} {text}\n", hashes(*level)),
                Block::Text { text } => writeln!(md, "{text}\n"),
                Block::List { items, spaced } => {
                    for item in items {
                        let _ = writeln!(md, "- {item}");
                    }
                    if *spaced {
                        md.push('\n');
                    }
                    Ok(())
                }
                Block::Table { title, rows, stem } => {
                    if let Some(title) = title {
                        let _ = writeln!(md, "{} {title}\n", hashes(3));
                    }
                    writeln!(
                        md,
                        "{rows}\n([CSV]({}), [JSON]({}))\n",
                        link(format!("{stem}.csv")),
                        link(format!("{stem}.json"))
                    )
                }
                Block::Figure { caption, stem } => {
                    let svg = format!("{stem}.svg");
                    writeln!(
                        md,
                        "![{caption}]({})\n\n[{svg}]({})\n",
                        link(format!("{stem}.png")),
                        link(svg.clone())
                    )
                }
            };
        }
        md
    }

    /// Writes the document as JSON to `path`.
    ///
    /// # Errors
    /// [`AnalysisError::Io`](super::AnalysisError::Io) naming the path.
    pub fn write(&self, path: &Path) -> Result<()> {
        // Strings, numbers and enums only: serialising cannot fail.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        rmteach::report::write_atomic(path, text.as_bytes()).map_err(io_err(path))
    }

    /// Reads a document written by [`Document::write`].
    ///
    /// # Errors
    /// [`RecordError`] naming the file.
    pub fn read(path: &Path) -> std::result::Result<Self, RecordError> {
        let text = crate::records::error::read_text(path, "report blocks written with the report")?;
        crate::records::error::parse_record(&text, path, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_moves_headings_and_prefixes_links_only() {
        let mut t = rmteach::report::Table::new("T 1", vec!["a".to_string()]);
        t.push_row(vec![rmteach::report::Cell::Float(1.0)]).unwrap();
        let mut doc = Document::default();
        doc.heading(1, "Report");
        doc.text("See [the paper](https://e.org).");
        doc.table(&t, "t1");
        doc.figure("F", "fig");
        doc.list(vec!["x".into()]);
        let here = doc.render(Placement::default());
        assert!(here.starts_with("# Report\n\nSee [the paper](https://e.org).\n\n### T 1\n\n"));
        assert!(here.contains("([CSV](t1.csv), [JSON](t1.json))"));
        assert!(here.ends_with("![F](fig.png)\n\n[fig.svg](fig.svg)\n\n- x\n\n"));
        let there = doc.render(Placement {
            heading_offset: 2,
            link_prefix: Some("runs/r"),
        });
        assert!(there.starts_with("### Report\n\nSee [the paper](https://e.org).\n\n##### T 1\n\n"));
        assert!(there.contains("([CSV](runs/r/t1.csv), [JSON](runs/r/t1.json))"));
        assert!(there.contains("![F](runs/r/fig.png)\n\n[fig.svg](runs/r/fig.svg)"));
        // The document survives its JSON file.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        doc.write(&path).unwrap();
        assert_eq!(Document::read(&path).unwrap(), doc);
    }
}
