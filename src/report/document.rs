//! A report as data: a list of [`Block`]s (headings, paragraphs, lists, tables,
//! figures) that renders to markdown at any heading depth and link prefix. A report
//! writes its document beside its markdown (for example `report.json` beside
//! `report.md`), so a report that includes another (`rmteach reproduce`) renders the
//! included one's blocks one level down with its links prefixed, instead of editing
//! its markdown. The experiments' reports and the theory's levers report both build
//! one.
//!
//! ```
//! use rmteach::report::{Document, Inline, Placement};
//!
//! let mut doc = Document::default();
//! doc.heading(1, "Levers");
//! doc.paragraph(vec![Inline::text("Every run: "), Inline::link("runs.json", "runs.json")]);
//! assert_eq!(doc.render(Placement::default()), "# Levers\n\nEvery run: [runs.json](runs.json)\n\n");
//! let there = doc.render(Placement { heading_offset: 1, link_prefix: Some("theory") });
//! assert_eq!(there, "## Levers\n\nEvery run: [runs.json](theory/runs.json)\n\n");
//! ```

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{write_atomic, ReportError};

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
    /// A paragraph whose links and images point at the report's own files (moved
    /// with the report when it is included elsewhere).
    Paragraph {
        /// Its pieces, in order.
        parts: Vec<Inline>,
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
        /// Header, rule and rows ([`Table::markdown_rows`](super::Table::markdown_rows)).
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

/// A piece of a [`Block::Paragraph`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Inline {
    /// Markdown text without relative links.
    Text {
        /// The text.
        text: String,
    },
    /// A link to one of the report's files.
    Link {
        /// The link text.
        label: String,
        /// The file, relative to the report.
        file: String,
    },
    /// An image of one of the report's files.
    Image {
        /// Alt text.
        alt: String,
        /// The file, relative to the report.
        file: String,
    },
}

impl Inline {
    /// Plain text.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text { text: text.into() }
    }

    /// A link labelled `label` to the report's `file`.
    pub fn link(label: impl Into<String>, file: impl Into<String>) -> Self {
        Self::Link {
            label: label.into(),
            file: file.into(),
        }
    }

    /// The image of the report's `file`, with alt text `alt`.
    pub fn image(alt: impl Into<String>, file: impl Into<String>) -> Self {
        Self::Image {
            alt: alt.into(),
            file: file.into(),
        }
    }
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

    /// Appends a paragraph of `parts` (text, links and images of the report's files).
    pub fn paragraph(&mut self, parts: Vec<Inline>) {
        self.blocks.push(Block::Paragraph { parts });
    }

    /// Appends a list followed by a blank line.
    pub fn list(&mut self, items: Vec<String>) {
        self.blocks.push(Block::List {
            items,
            spaced: true,
        });
    }

    /// Appends a table written under `stem`.
    pub fn table(&mut self, table: &super::Table, stem: &str) {
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
                Block::Paragraph { parts } => {
                    for part in parts {
                        let _ = match part {
                            Inline::Text { text } => write!(md, "{text}"),
                            Inline::Link { label, file } => {
                                write!(md, "[{label}]({})", link(file.clone()))
                            }
                            Inline::Image { alt, file } => {
                                write!(md, "![{alt}]({})", link(file.clone()))
                            }
                        };
                    }
                    writeln!(md, "\n")
                }
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

    /// Writes the document as JSON to `path` (atomically).
    ///
    /// # Errors
    /// [`ReportError::Io`] naming the path.
    pub fn write(&self, path: &Path) -> Result<(), ReportError> {
        // Strings, numbers and enums only: serialising cannot fail.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        write_atomic(path, text.as_bytes()).map_err(|source| ReportError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a document written by [`Document::write`].
    ///
    /// # Errors
    /// [`ReportError::Read`] or [`ReportError::Document`] naming the file.
    pub fn read(path: &Path) -> Result<Self, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ReportError::Document {
            path: path.to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_moves_headings_and_prefixes_links_only() {
        let mut t = crate::report::Table::new("T 1", vec!["a".to_string()]);
        t.push_row(vec![crate::report::Cell::Float(1.0)]).unwrap();
        let mut doc = Document::default();
        doc.heading(1, "Report");
        doc.text("See [the paper](https://e.org).");
        doc.table(&t, "t1");
        doc.figure("F", "fig");
        doc.list(vec!["x".into()]);
        doc.paragraph(vec![
            Inline::text("All: "),
            Inline::link("a", "a.json"),
            Inline::image("b", "b.png"),
        ]);
        let here = doc.render(Placement::default());
        assert!(here.starts_with("# Report\n\nSee [the paper](https://e.org).\n\n### T 1\n\n"));
        assert!(here.contains("([CSV](t1.csv), [JSON](t1.json))"));
        assert!(here.ends_with(
            "![F](fig.png)\n\n[fig.svg](fig.svg)\n\n- x\n\nAll: [a](a.json)![b](b.png)\n\n"
        ));
        let there = doc.render(Placement {
            heading_offset: 2,
            link_prefix: Some("runs/r"),
        });
        assert!(there.starts_with("### Report\n\nSee [the paper](https://e.org).\n\n##### T 1\n\n"));
        assert!(there.contains("([CSV](runs/r/t1.csv), [JSON](runs/r/t1.json))"));
        assert!(there.contains("![F](runs/r/fig.png)\n\n[fig.svg](runs/r/fig.svg)"));
        assert!(there.ends_with("All: [a](runs/r/a.json)![b](runs/r/b.png)\n\n"));
        // The document survives its JSON file.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        doc.write(&path).unwrap();
        assert_eq!(Document::read(&path).unwrap(), doc);
    }
}
