//! The report's charts, drawn as SVG with plotters: grouped bars with min-max whiskers, and
//! lines over request rate; dashed horizontal lines mark targets.
use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::Ranged;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::stats::Summary;

const SIZE: (u32, u32) = (900, 480);
const PALETTE: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// A horizontal reference line with its label.
pub struct Target {
    pub value: f64,
    pub label: String,
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing a chart: {e}")
}

/// Draws the target lines and the legend.
fn finish<'a, DB: DrawingBackend + 'a, X: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, plotters::coord::types::RangedCoordf64>>,
    x: (f64, f64),
    targets: &[Target],
) -> Result<()> {
    for target in targets {
        let style = ShapeStyle::from(&RED).stroke_width(1);
        chart
            .draw_series(DashedLineSeries::new(
                [(x.0, target.value), (x.1, target.value)],
                6,
                4,
                style,
            ))
            .map_err(err)?
            .label(target.label.clone())
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], RED));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// One group of bars per category, one bar per series, each with its min-max range.
pub fn grouped_bars(
    path: &Path,
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<Option<Summary>>)],
    targets: &[Target],
) -> Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let top = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten().map(|s| s.max))
        .chain(targets.iter().map(|t| t.value))
        .fold(0.0f64, f64::max)
        * 1.15;
    let n = categories.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..n, 0.0..top.max(1e-9))
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(y_label)
        .x_labels(0)
        .draw()
        .map_err(err)?;
    // Category names under the centre of each group, in the label area below the plot.
    let label_style = TextStyle::from(("sans-serif", 15))
        .pos(Pos::new(HPos::Center, VPos::Top))
        .color(&BLACK);
    for (i, category) in categories.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
        root.draw(&Text::new(
            category.clone(),
            (x, y + 8),
            label_style.clone(),
        ))
        .map_err(err)?;
    }
    let width = 0.8 / series.len() as f64;
    for (k, (name, values)) in series.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        let left = |i: usize| i as f64 + 0.1 + k as f64 * width;
        chart
            .draw_series(values.iter().enumerate().filter_map(|(i, s)| {
                let s = s.as_ref()?;
                Some(Rectangle::new(
                    [(left(i), 0.0), (left(i) + width * 0.9, s.median)],
                    color.filled(),
                ))
            }))
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        chart
            .draw_series(values.iter().enumerate().filter_map(|(i, s)| {
                let s = s.as_ref()?;
                let x = left(i) + width * 0.45;
                Some(PathElement::new([(x, s.min), (x, s.max)], BLACK))
            }))
            .map_err(err)?;
    }
    finish(&mut chart, (0.0, n), targets)?;
    root.present().map_err(err)?;
    Ok(())
}

/// One line per series over a numeric x axis.
pub fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    targets: &[Target],
) -> Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let points = || series.iter().flat_map(|(_, p)| p.iter());
    let x_max = points().map(|p| p.0).fold(0.0f64, f64::max) * 1.05;
    let y_max = points()
        .map(|p| p.1)
        .chain(targets.iter().map(|t| t.value))
        .fold(0.0f64, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max.max(1.0), 0.0..y_max.max(1e-9))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()
        .map_err(err)?;
    for (k, (name, values)) in series.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                values.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color));
        chart
            .draw_series(values.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(err)?;
    }
    finish(&mut chart, (0.0, x_max.max(1.0)), targets)?;
    root.present().map_err(err)?;
    Ok(())
}
