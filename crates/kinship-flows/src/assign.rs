//! Who gets a new task: round robin within the team, the member with the fewest open tasks,
//! or, by skill, the least loaded member who has the task's skill.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignRule {
    #[default]
    RoundRobin,
    LeastOpen,
    BySkill,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub name: String,
    #[serde(default)]
    pub skills: Vec<String>,
}

/// The member to assign: `turn` counts the team's tasks so far (for round robin), `open` each
/// member's open tasks. Ties go to the member listed first. `None` for an empty team.
pub fn assign(rule: AssignRule, members: &[Member], open: &BTreeMap<String, u64>, turn: u64, skill: Option<&str>) -> Option<String> {
    if members.is_empty() {
        return None;
    }
    let least_open =
        |candidates: &[&Member]| candidates.iter().min_by_key(|m| open.get(&m.name).copied().unwrap_or(0)).map(|m| m.name.clone());
    match rule {
        AssignRule::RoundRobin => Some(members[(turn % members.len() as u64) as usize].name.clone()),
        AssignRule::LeastOpen => least_open(&members.iter().collect::<Vec<_>>()),
        AssignRule::BySkill => {
            let skilled: Vec<&Member> = members.iter().filter(|m| skill.is_some_and(|s| m.skills.iter().any(|k| k == s))).collect();
            // Nobody has the skill (or the task names none): the team's least loaded member.
            least_open(&if skilled.is_empty() { members.iter().collect() } else { skilled })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_picks_as_it_says() {
        let members = vec![
            Member { name: "ana".into(), skills: vec!["warranty".into()] },
            Member { name: "ben".into(), skills: vec![] },
            Member { name: "chloe".into(), skills: vec!["warranty".into(), "billing".into()] },
        ];
        let open: BTreeMap<String, u64> = [("ana".to_string(), 3), ("ben".to_string(), 1), ("chloe".to_string(), 2)].into();
        let picks: Vec<_> = (0..4).map(|t| assign(AssignRule::RoundRobin, &members, &open, t, None).unwrap()).collect();
        assert_eq!(picks, ["ana", "ben", "chloe", "ana"]);
        assert_eq!(assign(AssignRule::LeastOpen, &members, &open, 0, None).unwrap(), "ben");
        assert_eq!(assign(AssignRule::BySkill, &members, &open, 0, Some("warranty")).unwrap(), "chloe");
        assert_eq!(assign(AssignRule::BySkill, &members, &open, 0, Some("legal")).unwrap(), "ben");
        assert_eq!(assign(AssignRule::LeastOpen, &[], &open, 0, None), None);
    }
}
