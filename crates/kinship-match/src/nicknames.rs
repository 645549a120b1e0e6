//! Given names and their common English short forms, as groups: a record that says "Liz"
//! and one that says "Elizabeth" agree at the phonetic level, which sits between the two
//! similarity bands. Names in a group need not be the same person's; the group is only
//! evidence, weighed by what the data shows it is worth.

/// Each line: names that stand for one another. A name appears in one group only.
const GROUPS: &[&[&str]] = &[
    &["elizabeth", "liz", "lizzie", "lizzy", "beth", "betty", "bette", "eliza", "libby", "betsy", "elisabeth"],
    &["william", "will", "bill", "billy", "willy", "liam"],
    &["robert", "rob", "bob", "bobby", "robbie", "bert"],
    &["richard", "rick", "ricky", "dick", "rich", "richie"],
    &["margaret", "maggie", "meg", "peggy", "marge", "margie", "greta"],
    &["katherine", "catherine", "kathryn", "katharine", "kate", "katie", "kathy", "cathy", "kat", "kitty", "cate"],
    &["jennifer", "jen", "jenny", "jenn"],
    &["james", "jim", "jimmy", "jamie"],
    &["john", "jack", "johnny", "jon"],
    &["jonathan", "jonny", "nathan"],
    &["michael", "mike", "mick", "mikey", "mickey"],
    &["christopher", "chris", "kit", "topher"],
    &["christine", "christina", "kristina", "tina", "chrissy", "kristen", "kirsten"],
    &["thomas", "tom", "tommy"],
    &["joseph", "joe", "joey"],
    &["josephine", "jo", "josie"],
    &["daniel", "dan", "danny"],
    &["danielle", "dani"],
    &["matthew", "matt", "matty"],
    &["anthony", "tony", "ant"],
    &["andrew", "andy", "drew"],
    &["alexander", "alex", "xander", "sandy", "alec"],
    &["alexandra", "alexa", "lexi", "sasha", "alexis"],
    &["benjamin", "ben", "benny", "benji"],
    &["samuel", "sam", "sammy"],
    &["samantha", "sammie"],
    &["nicholas", "nick", "nicky", "nico"],
    &["nicole", "nikki", "nicola"],
    &["edward", "ed", "eddie", "ted", "teddy", "ned"],
    &["charles", "charlie", "chuck", "chas"],
    &["charlotte", "lottie", "charli"],
    &["patrick", "pat", "paddy"],
    &["patricia", "patty", "trish", "tricia", "patsy"],
    &["stephen", "steven", "steve", "stevie"],
    &["stephanie", "steph", "stephie"],
    &["timothy", "tim", "timmy"],
    &["gregory", "greg"],
    &["jeffrey", "geoffrey", "jeff", "geoff"],
    &["kenneth", "ken", "kenny"],
    &["ronald", "ron", "ronnie"],
    &["donald", "don", "donnie"],
    &["david", "dave", "davey"],
    &["peter", "pete"],
    &["philip", "phillip", "phil"],
    &["lawrence", "laurence", "larry", "laurie"],
    &["raymond", "ray"],
    &["gerald", "gerry", "jerry"],
    &["frederick", "fred", "freddie", "freddy"],
    &["francis", "frank", "frankie"],
    &["frances", "fran", "fanny"],
    &["henry", "harry", "hank", "hal"],
    &["harold"],
    &["joshua", "josh"],
    &["zachary", "zach", "zack", "zac"],
    &["jacob", "jake"],
    &["nathaniel", "nate", "nat"],
    &["oliver", "ollie", "olly"],
    &["olivia", "liv", "livvy", "livia"],
    &["sophia", "sophie", "sofia"],
    &["isabella", "isabel", "izzy", "bella", "isabelle"],
    &["abigail", "abby", "abbie", "gail"],
    &["emily", "em", "emmy", "millie"],
    &["emma", "emmie"],
    &["amelia", "mia"],
    &["deborah", "debra", "deb", "debbie"],
    &["rebecca", "becky", "becca", "bec"],
    &["susan", "sue", "susie", "suzanne", "suzy"],
    &["barbara", "barb", "barbie", "babs"],
    &["dorothy", "dot", "dottie", "dolly"],
    &["victoria", "vicky", "vicki", "tori", "vic"],
    &["jessica", "jess", "jessie"],
    &["rachel", "rach"],
    &["natalie", "talia"],
    &["natasha", "tasha"],
    &["madeline", "madeleine", "maddie", "maddy"],
    &["jacqueline", "jackie", "jacqui"],
    &["theresa", "teresa", "tess", "tessa", "terri"],
    &["valerie", "val"],
    &["veronica", "roni"],
    &["virginia", "ginny", "ginger"],
    &["pamela", "pam"],
    &["cynthia", "cindy"],
    &["sandra", "sandi"],
    &["angela", "angie"],
    &["melissa", "mel", "missy"],
    &["melanie", "mellie"],
    &["kimberly", "kim", "kimmy"],
    &["leonard", "leo", "len", "lenny"],
    &["vincent", "vince", "vinnie"],
    &["eugene", "gene"],
    &["terrence", "terence", "terry"],
    &["walter", "walt", "wally"],
    &["albert", "al", "albie"],
    &["alfred", "alfie"],
    &["arthur", "art", "artie"],
    &["douglas", "doug"],
    &["gabriel", "gabe"],
    &["gabrielle", "gabby", "gabi"],
    &["mathilda", "matilda", "tilly", "tilda"],
    &["eleanor", "elle", "ellie", "nell", "nellie", "elenor"],
    &["penelope", "penny"],
    &["hannah", "hanna"],
    &["ruairi", "rory"],
];

/// The group a given name belongs to: its first name, as a key; `None` for names in no group.
pub fn group_of(name: &str) -> Option<&'static str> {
    let name = name.trim();
    GROUPS.iter().find(|g| g.iter().any(|n| n.eq_ignore_ascii_case(name))).map(|g| g[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms_find_their_name() {
        assert_eq!(group_of("Liz"), Some("elizabeth"));
        assert_eq!(group_of("BILL"), Some("william"));
        assert_eq!(group_of("elizabeth"), Some("elizabeth"));
        assert_eq!(group_of("zebedee"), None);
    }

    #[test]
    fn every_name_is_in_one_group() {
        let mut seen = std::collections::BTreeSet::new();
        for group in GROUPS {
            for name in *group {
                assert!(seen.insert(*name), "{name} is in two groups");
                assert_eq!(*name, name.to_lowercase());
            }
        }
    }
}
