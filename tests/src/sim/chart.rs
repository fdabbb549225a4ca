//! The PNG chart of a run: hosts by state over time, and IssueCertificate's rate against its
//! quota, drawn with `plotters` (pure-Rust bitmap backend and PNG encoder).
//!
//! Text needs a font: plotters' `ab_glyph` feature draws with a TrueType font registered from
//! bytes, read here from `SIM_FONT` or Debian's `fonts-dejavu-core` (installed by the
//! Makefile's `system-deps`). Without one the chart is drawn without its labels.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

use crate::sim::report::Report;

/// Where the font is looked for when `SIM_FONT` is not set (Debian's `fonts-dejavu-core`).
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart {path}: {message}")]
pub struct ChartError {
    /// The file.
    pub path: String,
    /// Why.
    pub message: String,
}

/// Registers the font once; whether text can be drawn.
fn font() -> bool {
    static FONT: OnceLock<bool> = OnceLock::new();
    *FONT.get_or_init(|| {
        let path = std::env::var("SIM_FONT").unwrap_or_else(|_| DEFAULT_FONT.to_owned());
        let Ok(bytes) = std::fs::read(&path) else {
            tracing::warn!(path, "no font: the chart is drawn without labels");
            return false;
        };
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
    })
}

const STATES: [(&str, RGBColor); 7] = [
    ("DEPLOYED", RGBColor(0x2c, 0xa0, 0x2c)),
    ("IDLE", RGBColor(0x7f, 0x7f, 0x7f)),
    ("CSR_REQUESTED", RGBColor(0x1f, 0x77, 0xb4)),
    ("ISSUING", RGBColor(0xff, 0x7f, 0x0e)),
    ("DEPLOYING", RGBColor(0x94, 0x67, 0xbd)),
    ("FAILED", RGBColor(0xd6, 0x27, 0x28)),
    ("REVOKED", RGBColor(0x8c, 0x56, 0x4b)),
];

/// Draws `report`'s chart into `path`.
pub fn draw(report: &Report, path: &Path) -> Result<(), ChartError> {
    let err = |e: &dyn std::fmt::Display| ChartError {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let text = font();
    let root = BitMapBackend::new(path, (1200, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (top, bottom) = root.split_vertically(480);
    let hours = report.scenario.days * 24.0;
    let hosts = report.hosts as f64;

    let mut states = ChartBuilder::on(&top);
    states.margin(15);
    if text {
        states
            .caption(
                format!(
                    "{}: hosts by state ({} hosts)",
                    report.scenario.name, report.hosts
                ),
                ("sans-serif", 22),
            )
            .x_label_area_size(35)
            .y_label_area_size(70);
    }
    let mut states = states
        .build_cartesian_2d(0.0..hours.max(0.1), 0.0..hosts * 1.05)
        .map_err(|e| err(&e))?;
    if text {
        states
            .configure_mesh()
            .x_desc("hours")
            .y_desc("hosts")
            .draw()
            .map_err(|e| err(&e))?;
    }
    for (state, color) in STATES {
        let points: Vec<(f64, f64)> = report
            .samples
            .iter()
            .map(|s| {
                (
                    s.minute / 60.0,
                    s.states.get(state).copied().unwrap_or(0) as f64,
                )
            })
            .collect();
        if points.iter().all(|(_, y)| *y == 0.0) {
            continue;
        }
        // One pixel wide: a thicker line's joins spike past the axes where a count drops and
        // rises again within a sample.
        let series = states
            .draw_series(LineSeries::new(points, color.stroke_width(1)))
            .map_err(|e| err(&e))?;
        if text {
            series
                .label(state)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
    }
    let offline: Vec<(f64, f64)> = report
        .samples
        .iter()
        .map(|s| (s.minute / 60.0, s.offline as f64))
        .collect();
    if offline.iter().any(|(_, y)| *y > 0.0) {
        let series = states
            .draw_series(LineSeries::new(offline, BLACK.stroke_width(1)))
            .map_err(|e| err(&e))?;
        if text {
            series
                .label("offline")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        }
    }
    if text {
        states
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
    }

    let rate = &report.issuance;
    let top_rate = rate.peak_per_s.max(rate.quota_per_s) * 1.15;
    let mut issuance = ChartBuilder::on(&bottom);
    issuance.margin(15);
    if text {
        issuance
            .caption(
                "IssueCertificate per second (per-minute mean) against the quota",
                ("sans-serif", 22),
            )
            .x_label_area_size(35)
            .y_label_area_size(70);
    }
    let mut issuance = issuance
        .build_cartesian_2d(0.0..hours.max(0.1), 0.0..top_rate.max(1.0))
        .map_err(|e| err(&e))?;
    if text {
        issuance
            .configure_mesh()
            .x_desc("hours")
            .y_desc("certificates / s")
            .draw()
            .map_err(|e| err(&e))?;
    }
    let points: Vec<(f64, f64)> = rate
        .per_minute
        .iter()
        .enumerate()
        .map(|(m, r)| (m as f64 / 60.0, *r))
        .collect();
    let series = issuance
        .draw_series(LineSeries::new(points, BLUE.stroke_width(1)))
        .map_err(|e| err(&e))?;
    if text {
        series
            .label("issued")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    }
    let quota = rate.quota_per_s;
    let series = issuance
        .draw_series(LineSeries::new(
            vec![(0.0, quota), (hours, quota)],
            RED.stroke_width(2),
        ))
        .map_err(|e| err(&e))?;
    if text {
        series
            .label("quota")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        issuance
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
