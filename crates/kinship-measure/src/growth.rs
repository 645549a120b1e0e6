//! Earned growth, as Reichheld defines it: revenue from customers who stay and grow (net
//! revenue retention) plus revenue from new customers who came because someone recommended
//! the business (earned), as opposed to new revenue bought with ads, promotions or a sales
//! push.
//!
//! For a period against the one before it:
//! - **NRR** = this period's revenue from last period's customers ÷ last period's revenue;
//! - **earned growth rate** = NRR + earned new customers' revenue ÷ last period's revenue − 1;
//! - **earned share** of new revenue (and of new customers).
//!
//! Reichheld's example: revenue 100 last period, 130 now, of which 85 from last period's
//! customers (NRR 85%) and 45 from new ones, 25 of them earned: earned growth 10%, earned
//! share 55.6%.

use serde::Serialize;

/// How a new customer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Came {
    /// By referral or recommendation.
    Earned,
    /// By ads, promotions, a sales push, or nothing known (counted as bought: earned needs evidence).
    Bought,
}

/// One customer's revenue in the two periods, whether it bought before them, and how it
/// came when it is new.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Customer {
    pub previous: f64,
    pub current: f64,
    /// Bought before the previous period: with nothing last period, it is won back, not new.
    pub earlier: bool,
    pub came: Came,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Growth {
    pub previous_revenue: f64,
    pub current_revenue: f64,
    /// This period's revenue from customers who bought last period.
    pub retained_revenue: f64,
    pub new_revenue: f64,
    pub earned_new_revenue: f64,
    /// Revenue from customers who bought before, not last period, and again now: neither
    /// retained nor new.
    pub won_back_revenue: f64,
    /// Customers who bought last period, and of them those who bought again.
    pub previous_customers: u64,
    pub retained_customers: u64,
    pub new_customers: u64,
    pub earned_new_customers: u64,
    pub won_back_customers: u64,
    /// Ratios; `None` when their denominator is zero.
    pub net_revenue_retention: Option<f64>,
    pub earned_growth_rate: Option<f64>,
    pub earned_share_of_new_revenue: Option<f64>,
    pub earned_share_of_new_customers: Option<f64>,
    /// Revenue growth, for comparison: current ÷ previous − 1.
    pub revenue_growth: Option<f64>,
}

/// The period's figures over every customer with revenue in either period. A customer with
/// revenue last period is returning (whatever `came` says); one with revenue only now is new,
/// unless it bought earlier (then won back).
pub fn growth(customers: impl IntoIterator<Item = Customer>) -> Growth {
    let mut g = Growth::default();
    for c in customers {
        let (previous, current) = (finite(c.previous), finite(c.current));
        g.previous_revenue += previous;
        g.current_revenue += current;
        if previous > 0.0 {
            g.previous_customers += 1;
            g.retained_revenue += current;
            g.retained_customers += u64::from(current > 0.0);
        } else if current > 0.0 && c.earlier {
            g.won_back_customers += 1;
            g.won_back_revenue += current;
        } else if current > 0.0 {
            g.new_customers += 1;
            g.new_revenue += current;
            if c.came == Came::Earned {
                g.earned_new_customers += 1;
                g.earned_new_revenue += current;
            }
        }
    }
    let ratio = |a: f64, b: f64| (b > 0.0).then(|| a / b);
    g.net_revenue_retention = ratio(g.retained_revenue, g.previous_revenue);
    g.earned_growth_rate = g.net_revenue_retention.map(|nrr| nrr + g.earned_new_revenue / g.previous_revenue - 1.0);
    g.earned_share_of_new_revenue = ratio(g.earned_new_revenue, g.new_revenue);
    g.earned_share_of_new_customers = ratio(g.earned_new_customers as f64, g.new_customers as f64);
    g.revenue_growth = ratio(g.current_revenue, g.previous_revenue).map(|r| r - 1.0);
    g
}

/// Negative, infinite or NaN revenue counts as none: a refund is not a customer.
fn finite(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 {
        v
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reichheld_worked_example() {
        // Last period: two customers, 60 and 40. Now: the first spends 85, the second left;
        // three new customers spend 25 (earned: 15 + 10) and 20 (bought).
        let customers = [
            Customer { previous: 60.0, current: 85.0, earlier: false, came: Came::Bought },
            Customer { previous: 40.0, current: 0.0, earlier: false, came: Came::Earned },
            Customer { previous: 0.0, current: 15.0, earlier: false, came: Came::Earned },
            Customer { previous: 0.0, current: 10.0, earlier: false, came: Came::Earned },
            Customer { previous: 0.0, current: 20.0, earlier: false, came: Came::Bought },
        ];
        let g = growth(customers);
        assert_eq!((g.previous_revenue, g.current_revenue), (100.0, 130.0));
        assert!((g.net_revenue_retention.unwrap() - 0.85).abs() < 1e-12);
        assert_eq!((g.new_revenue, g.earned_new_revenue), (45.0, 25.0));
        assert!((g.earned_growth_rate.unwrap() - 0.10).abs() < 1e-12);
        assert!((g.earned_share_of_new_revenue.unwrap() - 25.0 / 45.0).abs() < 1e-12);
        assert_eq!(format!("{:.1}%", g.earned_share_of_new_revenue.unwrap() * 100.0), "55.6%");
        assert!((g.revenue_growth.unwrap() - 0.30).abs() < 1e-12);
        assert_eq!((g.previous_customers, g.retained_customers, g.new_customers, g.earned_new_customers), (2, 1, 3, 2));
    }

    #[test]
    fn a_customer_back_after_a_gap_is_won_back_not_new() {
        let g = growth([Customer { previous: 0.0, current: 30.0, earlier: true, came: Came::Earned }]);
        assert_eq!((g.new_customers, g.won_back_customers, g.won_back_revenue, g.earned_new_revenue), (0, 1, 30.0, 0.0));
    }

    #[test]
    fn nothing_last_period_has_no_ratios_and_refunds_are_not_revenue() {
        let g = growth([
            Customer { previous: 0.0, current: 10.0, earlier: false, came: Came::Earned },
            Customer { previous: -5.0, current: f64::NAN, earlier: false, came: Came::Bought },
        ]);
        assert_eq!(g.net_revenue_retention, None);
        assert_eq!(g.earned_growth_rate, None);
        assert_eq!(g.earned_share_of_new_revenue, Some(1.0));
        assert_eq!(g.current_revenue, 10.0);
    }
}
