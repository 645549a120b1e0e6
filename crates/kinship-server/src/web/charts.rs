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

/// A funnel as horizontal bars: each step's share of those who entered, the drop-off from the
/// previous step shown faint behind it, with the step's name, count and percentage.
pub fn funnel_bars(steps: &[(String, u64, f64, f64)], label: &str) -> Markup {
    const ROW: f64 = 34.0;
    const WIDTH: f64 = 600.0;
    const LABEL: f64 = 190.0;
    let height = ROW * steps.len().max(1) as f64;
    // Room after the longest bar for its count and percentage.
    let bar = WIDTH - LABEL - 110.0;
    html! {
        svg.funnel viewBox=(format!("0 0 {WIDTH} {height}")) role="img" aria-label=(label) {
            @for (i, (name, count, share, previous)) in steps.iter().enumerate() {
                @let y = ROW * i as f64;
                text x="0" y=(format!("{:.1}", y + 21.0)) { (name) }
                rect.previous x=(LABEL) y=(format!("{:.1}", y + 6.0)) width=(format!("{:.1}", bar * previous)) height="22" {}
                rect x=(LABEL) y=(format!("{:.1}", y + 6.0)) width=(format!("{:.1}", bar * share)) height="22" {
                    title { (name) ": " (count) " (" (format!("{:.1}", share * 100.0)) "%)" }
                }
                text.value x=(format!("{:.1}", LABEL + bar * share + 6.0)) y=(format!("{:.1}", y + 21.0)) { (count) " · " (format!("{:.1}%", share * 100.0)) }
            }
        }
    }
}

/// Each variant's lift with its interval, around a line at zero: (name, lift, low, high).
pub fn intervals(rows: &[(String, f64, f64, f64)], label: &str) -> Markup {
    const ROW: f64 = 30.0;
    const WIDTH: f64 = 600.0;
    const LABEL: f64 = 140.0;
    let height = ROW * rows.len().max(1) as f64 + 20.0;
    let reach = rows.iter().flat_map(|r| [r.2.abs(), r.3.abs()]).filter(|v| v.is_finite()).fold(0.01_f64, f64::max);
    let x = |v: f64| LABEL + (WIDTH - LABEL - 10.0) * (0.5 + 0.5 * (v / reach).clamp(-1.0, 1.0));
    html! {
        svg.intervals viewBox=(format!("0 0 {WIDTH} {height}")) role="img" aria-label=(label) {
            line.axis x1=(format!("{:.1}", x(0.0))) x2=(format!("{:.1}", x(0.0))) y1="0" y2=(format!("{height:.1}")) {}
            @for (i, (name, lift, low, high)) in rows.iter().enumerate() {
                @let y = ROW * i as f64 + 15.0;
                text x="0" y=(format!("{:.1}", y + 4.0)) { (name) }
                line.interval x1=(format!("{:.1}", x(*low))) x2=(format!("{:.1}", x(*high))) y1=(format!("{y:.1}")) y2=(format!("{y:.1}")) {}
                circle cx=(format!("{:.1}", x(*lift))) cy=(format!("{y:.1}")) r="4" {
                    title { (name) ": " (format!("{:+.2}% [{:+.2}%, {:+.2}%]", lift * 100.0, low * 100.0, high * 100.0)) }
                }
            }
            text x=(format!("{:.1}", x(0.0) + 3.0)) y=(format!("{:.1}", height - 4.0)) { "0" }
        }
    }
}

/// A measure over time with its interval as a shaded band, on a scale from `min` to `max`
/// with a line at zero: (label, value, low, high) per point, oldest first.
pub fn band(points: &[(String, f64, f64, f64)], min: f64, max: f64, label: &str) -> Markup {
    const WIDTH: f64 = 600.0;
    const HEIGHT: f64 = 160.0;
    const PAD: f64 = 24.0;
    let x = |i: usize| PAD + (WIDTH - 2.0 * PAD) * if points.len() > 1 { i as f64 / (points.len() - 1) as f64 } else { 0.5 };
    let y = |v: f64| PAD + (HEIGHT - 2.0 * PAD) * (1.0 - ((v.clamp(min, max) - min) / (max - min).max(f64::EPSILON)));
    let line: Vec<String> = points.iter().enumerate().map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.1))).collect();
    let upper = points.iter().enumerate().map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.3)));
    let lower = points.iter().enumerate().rev().map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.2)));
    let area: Vec<String> = upper.chain(lower).collect();
    html! {
        svg.band viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(label) {
            line.axis x1=(format!("{PAD}")) x2=(format!("{:.1}", WIDTH - PAD)) y1=(format!("{:.1}", y(0.0))) y2=(format!("{:.1}", y(0.0))) {}
            polygon.interval points=(area.join(" ")) {}
            polyline points=(line.join(" ")) {}
            @for (i, (name, value, low, high)) in points.iter().enumerate() {
                circle cx=(format!("{:.1}", x(i))) cy=(format!("{:.1}", y(*value))) r="3" {
                    title { (name) ": " (format!("{value:+.1} [{low:+.1}, {high:+.1}]")) }
                }
            }
            @if let (Some(first), Some(last)) = (points.first(), points.last()) {
                text x=(format!("{PAD}")) y=(format!("{:.1}", HEIGHT - 4.0)) { (first.0) }
                text x=(format!("{:.1}", WIDTH - PAD)) y=(format!("{:.1}", HEIGHT - 4.0)) text-anchor="end" { (last.0) }
            }
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
    fn a_funnel_bar_is_as_long_as_its_share() {
        let svg = super::funnel_bars(&[("Visit".into(), 10, 1.0, 1.0), ("Order".into(), 3, 0.3, 1.0)], "funnel").into_string();
        assert!(svg.contains(r#"width="300.0""#) && svg.contains(r#"width="90.0""#), "{svg}");
        assert!(svg.contains("3 · 30.0%"));
        let svg = super::intervals(&[("treatment".into(), 0.05, -0.01, 0.11)], "lift").into_string();
        assert!(svg.contains("+5.00% [-1.00%, +11.00%]"), "{svg}");
        let svg = super::band(&[("2026-01".into(), 30.0, 15.0, 45.0), ("2026-02".into(), -10.0, -30.0, 10.0)], -100.0, 100.0, "nps")
            .into_string();
        // 30 on a −100…100 scale is 35% of the way down the 112-high plot, below its 24 margin.
        assert!(svg.contains(r#"cy="63.2""#) && svg.contains("2026-02: -10.0 [-30.0, +10.0]"), "{svg}");
    }

    #[test]
    fn bars_mark_days() {
        let svg = super::hourly_bars(&[(0, 1), (3_600_000, 2)], "events").into_string();
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("01 Jan"));
    }
}
