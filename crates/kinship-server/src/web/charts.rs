//! Charts as inline SVG, drawn here: a sparkline and a bar chart. Each carries a text
//! alternative (`role="img"` with a label) for screen readers.

use maud::{html, Markup};

/// A line of `values` scaled to `width` × `height`, with the last value marked.
pub fn sparkline(values: &[u64], width: u32, height: u32, label: &str) -> Markup {
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let step = if values.len() > 1 { f64::from(width - 4) / (values.len() - 1) as f64 } else { 0.0 };
    let point = |i: usize, v: u64| (2.0 + step * i as f64, 2.0 + f64::from(height - 4) * (1.0 - v as f64 / max));
    let points: Vec<String> = values.iter().enumerate().map(|(i, v)| point(i, *v)).map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let last = values.last().map(|v| point(values.len() - 1, *v));
    html! {
        svg.sparkline viewBox=(format!("0 0 {width} {height}")) width=(width) height=(height) role="img" aria-label=(label) {
            @if values.len() > 1 { polyline points=(points.join(" ")) {} }
            @if let Some((x, y)) = last { circle cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="2" {} }
        }
    }
}

/// One bar per hour over `hours` (start of each hour in Unix ms, oldest first, with counts),
/// with a tick and date under the start of each day.
pub fn hourly_bars(hours: &[(i64, u64)], label: &str) -> Markup {
    const HEIGHT: f64 = 160.0;
    const AXIS: f64 = 18.0;
    let width = (hours.len().max(1) * 4) as f64;
    let max = hours.iter().map(|h| h.1).max().unwrap_or(0).max(1) as f64;
    html! {
        svg.bars viewBox=(format!("0 0 {width} {}", HEIGHT + AXIS)) preserveAspectRatio="none" role="img" aria-label=(label) {
            @for (i, (hour, count)) in hours.iter().enumerate() {
                @let h = HEIGHT * *count as f64 / max;
                rect x=(i * 4) y=(format!("{:.1}", HEIGHT - h)) width="3" height=(format!("{h:.1}")) {
                    title { (super::time(*hour)) ": " (count) }
                }
                @if hour % 86_400_000 == 0 {
                    line.tick x1=(i * 4) x2=(i * 4) y1=(HEIGHT) y2=(HEIGHT + 4.0) {}
                    text x=(i * 4 + 2) y=(HEIGHT + 15.0) { (chrono::DateTime::from_timestamp_millis(*hour).map_or_else(String::new, |t| t.format("%d %b").to_string())) }
                }
            }
            line.axis x1="0" x2=(width) y1=(HEIGHT) y2=(HEIGHT) {}
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sparkline_scales_to_the_largest_value() {
        let svg = super::sparkline(&[0, 5, 10], 104, 24, "sizes").into_string();
        assert!(svg.contains(r#"points="2.0,22.0 52.0,12.0 102.0,2.0""#), "{svg}");
        assert!(svg.contains(r#"aria-label="sizes""#));
    }

    #[test]
    fn bars_mark_days() {
        let svg = super::hourly_bars(&[(0, 1), (3_600_000, 2)], "events").into_string();
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("01 Jan"));
    }
}
