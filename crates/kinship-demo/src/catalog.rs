//! What the demo business sells and talks about: an Australian outdoor and homewares shop.
//! Products come in families of like items so next-best-offer features have sensible
//! substitutes to find.

/// SKU, name, price in cents.
pub const PRODUCTS: &[(&str, &str, u32)] = &[
    ("SOC-001", "Merino Hiking Socks", 2995),
    ("SOC-002", "Merino Everyday Socks 3-pack", 3995),
    ("SOC-003", "Bamboo Ankle Socks 5-pack", 2495),
    ("SHO-001", "Trail Running Shoes", 18995),
    ("SHO-002", "Waterproof Hiking Boots", 24995),
    ("SHO-003", "Recovery Sandals", 6995),
    ("JKT-001", "Packable Rain Jacket", 12995),
    ("JKT-002", "Down Puffer Jacket", 22995),
    ("JKT-003", "Softshell Jacket", 15995),
    ("TOP-001", "Merino Base Layer Tee", 8995),
    ("TOP-002", "Organic Cotton Tee", 3995),
    ("TOP-003", "Fleece Quarter Zip", 7995),
    ("BAG-001", "Daypack 20L", 8995),
    ("BAG-002", "Hiking Pack 45L", 27995),
    ("BAG-003", "Dry Bag 10L", 2995),
    ("BTL-001", "Insulated Bottle 750ml", 4995),
    ("BTL-002", "Insulated Bottle 1L", 5995),
    ("BTL-003", "Collapsible Bottle 500ml", 2495),
    ("CUP-001", "Keep Cup 340ml", 2995),
    ("CUP-002", "Enamel Camp Mug", 1995),
    ("TNT-001", "Two-Person Hiking Tent", 34995),
    ("TNT-002", "Four-Person Family Tent", 54995),
    ("SLP-001", "Down Sleeping Bag -5C", 39995),
    ("SLP-002", "Synthetic Sleeping Bag 5C", 14995),
    ("SLP-003", "Self-Inflating Mat", 11995),
    ("STV-001", "Compact Gas Stove", 7995),
    ("STV-002", "Titanium Cook Set", 9995),
    ("LMP-001", "Rechargeable Head Torch", 5995),
    ("LMP-002", "Camp Lantern", 4495),
    ("HAT-001", "Wide Brim Sun Hat", 4995),
    ("HAT-002", "Merino Beanie", 3495),
    ("GLV-001", "Touchscreen Gloves", 3995),
    ("SUN-001", "SPF50+ Sunscreen 200ml", 1995),
    ("FST-001", "First Aid Kit", 4995),
    ("HME-001", "Linen Throw Rug", 12995),
    ("HME-002", "Wool Picnic Blanket", 8995),
    ("HME-003", "Beeswax Wraps 3-pack", 2495),
    ("HME-004", "Bamboo Cutlery Set", 1995),
    ("GFT-001", "Gift Card $50", 5000),
    ("GFT-002", "Gift Card $100", 10000),
];

pub const CARRIERS: &[&str] = &["Australia Post", "Australia Post", "Australia Post", "StarTrack", "Sendle", "CouriersPlease", "Aramex"];

/// Help-desk subjects; `{product}` is replaced by a product the person bought.
pub const TICKET_SUBJECTS: &[&str] = &[
    "Where is my order?",
    "Order hasn't arrived yet",
    "{product} arrived damaged",
    "Wrong size {product}, can I exchange?",
    "Refund request",
    "Warranty claim: {product}",
    "{product} stopped working",
    "Can I get a copy of my invoice?",
    "Charged twice for one order",
    "Change my delivery address",
    "Can't log in to my account",
    "Please unsubscribe me",
    "Is the {product} back in stock?",
    "Question about {product}",
];

/// Social posts reach the help desk as tickets too.
pub const SOCIAL_SUBJECTS: &[&str] = &[
    "still waiting on my order, any update?",
    "my {product} fell apart after two weeks",
    "love the {product}!",
    "nobody answers my emails",
    "is there a sale on soon?",
];

/// "Why did you buy from us": referrals are earned growth, the rest is bought.
pub const WHY_EARNED: &[&str] = &[
    "a friend recommended you",
    "my colleague uses it",
    "my sister swears by your socks",
    "recommended on a hiking forum",
    "I've bought before and loved it",
];
pub const WHY_BOUGHT: &[&str] =
    &["saw an advert", "there was a promotion", "a salesperson called me", "clicked an Instagram ad", "got a discount code"];

/// Email campaign themes; one campaign goes out about every two weeks.
pub const CAMPAIGN_THEMES: &[&str] = &[
    "newsletter",
    "new-arrivals",
    "end-of-season-sale",
    "hiking-guide",
    "member-offer",
    "gift-guide",
    "back-in-stock",
    "winter-warmers",
    "summer-essentials",
    "free-shipping-week",
];

pub const TEST_NAMES: &[(&str, &str)] = &[("Test", "User"), ("Test", "Test"), ("QA", "Tester"), ("Do Not", "Use"), ("Demo", "Account")];

/// A product's category, from its SKU's prefix, with the category's warranty in months.
fn category(sku: &str) -> (&'static str, u32) {
    match &sku[..3] {
        "SOC" => ("socks", 6),
        "SHO" => ("footwear", 12),
        "JKT" => ("jackets", 24),
        "TOP" => ("tops", 12),
        "BAG" => ("bags", 24),
        "BTL" | "CUP" => ("drinkware", 12),
        "TNT" => ("tents", 24),
        "SLP" => ("sleeping", 24),
        "STV" => ("cooking", 24),
        "LMP" => ("lighting", 12),
        "HAT" | "GLV" => ("accessories", 6),
        "SUN" | "FST" => ("care", 0),
        "HME" => ("home", 12),
        _ => ("gift cards", 0),
    }
}

/// The product catalogue as the shop would export it: `sku,name,category,attributes,price,warranty_months`.
/// Attributes are the name's words, so like items share some.
pub fn products_csv() -> String {
    let mut out = String::from("sku,name,category,attributes,price,warranty_months\n");
    for (sku, name, cents) in PRODUCTS {
        let (category, warranty) = category(sku);
        let attributes: Vec<String> =
            name.split(|c: char| !c.is_alphanumeric() && c != '-').filter(|w| w.len() > 1).map(str::to_lowercase).collect();
        out.push_str(&format!("{sku},{name},{category},{},{}.{:02},{warranty}\n", attributes.join(";"), cents / 100, cents % 100));
    }
    out
}

/// Stock per SKU: about one product in four is sold out, the same ones for every seed, so a
/// complaint about one of them gets a replacement suggested.
pub fn inventory_csv() -> String {
    let mut out = String::from("sku,on_hand\n");
    for (i, (sku, _, _)) in PRODUCTS.iter().enumerate() {
        let on_hand = if i % 4 == 1 { 0 } else { 3 + (i * 37) % 60 };
        out.push_str(&format!("{sku},{on_hand}\n"));
    }
    out
}
