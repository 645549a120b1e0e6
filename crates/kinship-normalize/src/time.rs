use chrono::{DateTime, NaiveDate, NaiveDateTime};

const DATE_FORMATS: &[&str] = &["%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y", "%d %b %Y", "%B %d, %Y"];

/// A calendar date in ISO form (`YYYY-MM-DD`) from the common written forms. Day-first is
/// preferred for slashed dates, as in most of the world; ISO input is unambiguous.
pub fn parse_date(raw: &str) -> Option<String> {
    let s = raw.trim();
    if s.is_empty() {
        return None;
    }
    if let Some(ms) = parse_timestamp_ms(s).filter(|_| s.contains(['T', ' ', ':'])) {
        return DateTime::from_timestamp_millis(ms).map(|d| d.date_naive().to_string());
    }
    DATE_FORMATS.iter().find_map(|f| NaiveDate::parse_from_str(s, f).ok()).map(|d| d.to_string())
}

/// Unix milliseconds from RFC 3339, `YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DD`, or Unix seconds.
/// Times without an offset are read as UTC.
pub fn parse_timestamp_ms(raw: &str) -> Option<i64> {
    let s = raw.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.timestamp_millis());
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, f) {
            return Some(d.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis());
    }
    // Unix seconds, with or without a fraction; a bounded range keeps ids out.
    let secs: f64 = s.parse().ok()?;
    (0.0..=4_102_444_800.0).contains(&secs).then(|| (secs * 1000.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        for raw in ["1984-03-07", "19840307", "07/03/1984", "7.3.1984", "07 Mar 1984", "March 7, 1984", "1984-03-07T10:00:00Z"] {
            assert_eq!(parse_date(raw).as_deref(), Some("1984-03-07"), "{raw}");
        }
        assert_eq!(parse_date("1984-02-30"), None);
        assert_eq!(parse_date("soon"), None);
    }

    #[test]
    fn timestamps() {
        let t = 1_700_000_000_000;
        assert_eq!(parse_timestamp_ms("2023-11-14T22:13:20Z"), Some(t));
        assert_eq!(parse_timestamp_ms("2023-11-14T23:13:20+01:00"), Some(t));
        assert_eq!(parse_timestamp_ms("2023-11-14 22:13:20"), Some(t));
        assert_eq!(parse_timestamp_ms("1700000000"), Some(t));
        assert_eq!(parse_timestamp_ms("2023-11-14"), Some(1_699_920_000_000));
        assert_eq!(parse_timestamp_ms("yesterday"), None);
        assert_eq!(parse_timestamp_ms("99999999999"), None, "out of range");
    }
}
