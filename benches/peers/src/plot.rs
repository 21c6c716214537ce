//! PNG plot of the scale sweep with plotters' bitmap backend. Plotters is
//! built without its font features (they need system fonts), so the labels
//! are drawn with a small built-in 5x7 pixel font.

use plotters::prelude::*;

/// 5x7 glyphs, one row per byte, bit 4 = leftmost column.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '/' => [0x01, 0x02, 0x02, 0x04, 0x08, 0x08, 0x10],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        ',' => [0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08],
        '=' => [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00],
        '+' => [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00],
        _ => [0; 7],
    }
}

const SCALE: i32 = 2;

fn text_width(s: &str) -> i32 {
    s.chars().count() as i32 * 6 * SCALE
}

fn draw_text<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    s: &str,
    (x, y): (i32, i32),
    color: &RGBColor,
) {
    for (i, c) in s.chars().enumerate() {
        let ox = x + i as i32 * 6 * SCALE;
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..5 {
                if bits & (0x10 >> col) != 0 {
                    let px = ox + col * SCALE;
                    let py = y + row as i32 * SCALE;
                    let _ = area.draw(&Rectangle::new(
                        [(px, py), (px + SCALE - 1, py + SCALE - 1)],
                        color.filled(),
                    ));
                }
            }
        }
    }
}

/// One line of the plot.
pub struct Series {
    pub label: String,
    pub color: RGBColor,
    /// (live allocations, ns per op)
    pub points: Vec<(f64, f64)>,
}

fn nice_step(max: f64) -> f64 {
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if raw <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

fn fmt_count(x: f64) -> String {
    if x >= 1e6 {
        format!("{}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{}K", x / 1e3)
    } else {
        format!("{x}")
    }
}

/// Panels side by side, each with its title and series; log x (live
/// allocations), linear y (ns per op) from 0.
pub fn plot(path: &str, title: &str, panels: &[(String, Vec<Series>)]) -> Result<(), String> {
    let (w, h) = (640 * panels.len() as u32, 560u32);
    let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    draw_text(
        &root,
        title,
        ((w as i32 - text_width(title)) / 2, 8),
        &BLACK,
    );
    let areas = root.margin(30, 0, 0, 0).split_evenly((1, panels.len()));
    let (xmin, xmax) = panels
        .iter()
        .flat_map(|(_, s)| s.iter().flat_map(|s| s.points.iter().map(|p| p.0)))
        .fold((f64::MAX, 0f64), |(a, b), x| (a.min(x), b.max(x)));
    for (area, (ptitle, series)) in areas.iter().zip(panels) {
        let ymax_data = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0f64, f64::max);
        let step = nice_step(ymax_data.max(1.0));
        let ymax = (ymax_data / step).ceil() * step;
        let pw = area.dim_in_pixel().0 as i32;
        draw_text(area, ptitle, ((pw - text_width(ptitle)) / 2, 4), &BLACK);
        let mut chart = ChartBuilder::on(area)
            .margin_top(30)
            .margin_left(80)
            .margin_right(20)
            .margin_bottom(60)
            .build_cartesian_2d((xmin / 1.5..xmax * 1.5).log_scale(), 0f64..ymax)
            .map_err(|e| e.to_string())?;
        let grey = RGBColor(220, 220, 220);
        // Grid and ticks.
        let mut x = 1.0;
        while x <= xmax * 1.01 {
            if x >= xmin * 0.99 {
                chart
                    .draw_series(LineSeries::new([(x, 0.0), (x, ymax)], grey))
                    .map_err(|e| e.to_string())?;
                let (px, py) = chart.backend_coord(&(x, 0.0));
                let l = fmt_count(x);
                let (ox, oy) = area.get_base_pixel();
                draw_text(
                    area,
                    &l,
                    (px - ox - text_width(&l) / 2, py - oy + 8),
                    &BLACK,
                );
            }
            x *= 10.0;
        }
        let mut y = 0.0;
        while y <= ymax + step / 2.0 {
            chart
                .draw_series(LineSeries::new([(xmin / 1.5, y), (xmax * 1.5, y)], grey))
                .map_err(|e| e.to_string())?;
            let (px, py) = chart.backend_coord(&(xmin / 1.5, y));
            let l = format!("{}", (y * 100.0).round() / 100.0);
            let (ox, oy) = area.get_base_pixel();
            draw_text(
                area,
                &l,
                (px - ox - text_width(&l) - 8, py - oy - 7),
                &BLACK,
            );
            y += step;
        }
        // Axes.
        chart
            .draw_series(LineSeries::new(
                [(xmin / 1.5, 0.0), (xmax * 1.5, 0.0)],
                BLACK,
            ))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(
                [(xmin / 1.5, 0.0), (xmin / 1.5, ymax)],
                BLACK,
            ))
            .map_err(|e| e.to_string())?;
        let xl = "LIVE ALLOCATIONS (LOG)";
        let ah = area.dim_in_pixel().1 as i32;
        draw_text(area, xl, ((pw - text_width(xl)) / 2, ah - 24), &BLACK);
        // Series.
        for s in series {
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    s.color.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(
                    s.points
                        .iter()
                        .map(|&p| Circle::new(p, 4, s.color.filled())),
                )
                .map_err(|e| e.to_string())?;
        }
        // Legend (top left inside the plot).
        let (lx, ly) = chart.backend_coord(&(xmin / 1.5, ymax));
        let (ox, oy) = area.get_base_pixel();
        for (i, s) in series.iter().enumerate() {
            let yy = ly - oy + 8 + i as i32 * 20;
            let xx = lx - ox + 12;
            let _ = area.draw(&Rectangle::new(
                [(xx, yy + 2), (xx + 18, yy + 10)],
                s.color.filled(),
            ));
            draw_text(area, &s.label, (xx + 26, yy), &BLACK);
        }
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}
