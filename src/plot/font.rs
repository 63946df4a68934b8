//! The embedded font used for all figure text.
//!
//! `plotters` is built with its `ab_glyph` text renderer instead of
//! `font-kit`, so no system font, fontconfig or font file on disk is needed:
//! the glyphs come from a TTF compiled into the binary. The bytes are taken
//! from the [`epaint_default_fonts`] crate (the fonts shipped with egui):
//!
//! * Ubuntu Light (Ubuntu Font Licence 1.0) for `sans-serif` and `serif`;
//! * Hack Regular (MIT + Bitstream Vera licence) for `monospace`.
//!
//! Registration happens once per process; every `render` call goes through
//! [`ensure_fonts`] first.

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, InvalidFont, ScaleFont};
use plotters::style::{register_font, FontStyle};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};

use super::error::PlotError;

/// The proportional font (Ubuntu Light, Ubuntu Font Licence 1.0) used for all
/// figure text.
pub const SANS_FONT: &[u8] = epaint_default_fonts::UBUNTU_LIGHT;

/// The monospace font (Hack Regular, MIT + Bitstream Vera licence),
/// registered as `monospace`.
pub const MONO_FONT: &[u8] = epaint_default_fonts::HACK_REGULAR;

/// The font family every figure asks for.
pub(crate) const FAMILY: &str = "sans-serif";

/// Register the embedded fonts with `plotters` (once per process).
///
/// Safe to call from many threads and many times; only the first call does
/// any work. Returns [`PlotError::Font`] if a font could not be parsed.
pub fn ensure_fonts() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    let outcome = REGISTERED.get_or_init(|| {
        let table: [(&str, &'static [u8]); 3] = [
            ("sans-serif", SANS_FONT),
            ("serif", SANS_FONT),
            ("monospace", MONO_FONT),
        ];
        for (name, bytes) in table {
            for style in [
                FontStyle::Normal,
                FontStyle::Bold,
                FontStyle::Italic,
                FontStyle::Oblique,
            ] {
                register_font(name, style, bytes).map_err(|_| name.to_string())?;
            }
        }
        Ok(())
    });
    outcome.clone().map_err(|name| PlotError::Font { name })
}

/// Parsed faces for the raster text path (see [`GlyphFix`]).
fn face(family: &str) -> Result<&'static FontRef<'static>, InvalidFont> {
    static SANS: OnceLock<Result<FontRef<'static>, InvalidFont>> = OnceLock::new();
    static MONO: OnceLock<Result<FontRef<'static>, InvalidFont>> = OnceLock::new();
    let (cell, bytes) = if family == "monospace" {
        (&MONO, MONO_FONT)
    } else {
        (&SANS, SANS_FONT)
    };
    cell.get_or_init(|| FontRef::try_from_slice(bytes))
        .as_ref()
        .map_err(|e| *e)
}

/// A raster backend whose text is drawn with correctly placed glyphs.
///
/// plotters 0.3.7's `ab_glyph` renderer drops each glyph's left side
/// bearing, which visibly mangles spacing ("Ob jective"). This wrapper
/// delegates everything to the inner backend except `draw_text`, which
/// rasterises with `ab_glyph` using the same layout box (so anchoring and
/// label areas computed by plotters stay valid), honouring anchors,
/// rotation and colour alpha. Used for PNG output only; SVG output keeps
/// real `<text>` elements.
pub(crate) struct GlyphFix<DB>(pub(crate) DB);

impl<DB: DrawingBackend> DrawingBackend for GlyphFix<DB> {
    type ErrorType = DB::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.fill_polygon(vert, style)
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        self.0.estimate_text_size(text, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.blit_bitmap(pos, size, src)
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let color = style.color();
        if color.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        let font =
            face(style.family().as_str()).map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
        let ((min_x, min_y), (max_x, max_y)) = style
            .layout_box(text)
            .map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
        let (width, height) = (max_x - min_x, max_y - min_y);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let scaled = font.as_scaled(style.size() as f32);
        // Baseline placed so that ascender..descender fill the layout box.
        let baseline = height as f32 * scaled.ascent() / (scaled.ascent() - scaled.descent());
        let trans = style.transform();
        let (w, h) = self.0.get_size();
        let mut pen = 0f32;
        let mut prev = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = prev {
                pen += scaled.kern(p, id);
            }
            prev = Some(id);
            let glyph = id.with_scale_and_position(scaled.scale(), point(pen, baseline));
            pen += scaled.h_advance(id);
            let Some(outline) = font.outline_glyph(glyph) else {
                continue;
            };
            let bounds = outline.px_bounds();
            let (ox, oy) = (bounds.min.x as i32 + dx, bounds.min.y as i32 + dy);
            let mut result = Ok(());
            outline.draw(|gx, gy, coverage| {
                if result.is_err() || coverage <= 0.0 {
                    return;
                }
                let (x, y) = trans.transform(ox + gx as i32, oy + gy as i32);
                let (x, y) = (pos.0 + x, pos.1 + y);
                if x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h {
                    let ink = BackendColor {
                        alpha: color.alpha * f64::from(coverage.min(1.0)),
                        rgb: color.rgb,
                    };
                    result = self.0.draw_pixel((x, y), ink);
                }
            });
            result?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fonts_register_and_parse() {
        ensure_fonts().unwrap();
        // A second call is a no-op.
        ensure_fonts().unwrap();
        let style = plotters::style::FontDesc::new(
            plotters::style::FontFamily::SansSerif,
            20.0,
            FontStyle::Normal,
        );
        let (w, h) = style.box_size("Reward variance").unwrap();
        assert!(w > 50 && h > 5, "text should have a real size, got {w}x{h}");
    }
}
