// The web UI, driven in headless Chromium by the test `web_ui_in_headless_chromium`
// (crates/kinship/tests/cli/web_ui.rs), which prepares demo data and passes what it knows
// about one customer in the environment. Writes a screenshot of each page at 1280 px and
// 390 px wide into E2E_SCREENSHOTS. Exits non-zero at the first step that fails.
import { pathToFileURL } from "node:url";
import assert from "node:assert/strict";

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set`);
  return value;
};
const base = env("E2E_URL");
const shots = env("E2E_SCREENSHOTS");
const person = {
  id: env("E2E_PROFILE"),
  typo: env("E2E_TYPO"),
  fullName: env("E2E_FULL_NAME"),
  email: env("E2E_EMAIL"),
};
const { chromium } = await import(pathToFileURL(env("E2E_PLAYWRIGHT")).href);

const WIDTHS = [[1280, 900], [390, 844]];

async function shoot(page, name) {
  for (const [width, height] of WIDTHS) {
    await page.setViewportSize({ width, height });
    await page.screenshot({ path: `${shots}/${name}-${width}.png`, fullPage: true });
  }
  await page.setViewportSize({ width: WIDTHS[0][0], height: WIDTHS[0][1] });
}

async function signIn(page, name, password) {
  await page.goto(`${base}/`);
  assert.match(page.url(), /\/signin/, "an anonymous visitor is sent to sign in");
  await page.getByLabel("User name").fill(name);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${base}/`);
}

const step = (what) => console.log(`- ${what}`);
const browser = await chromium.launch({ executablePath: env("E2E_CHROMIUM"), args: ["--no-sandbox"] });
try {
  const admin = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  admin.setDefaultTimeout(15000);

  step("a wrong password is refused");
  await admin.goto(`${base}/signin`);
  await shoot(admin, "signin");
  await admin.getByLabel("User name").fill("demo-admin");
  await admin.getByLabel("Password", { exact: true }).fill("not the password");
  await admin.getByRole("button", { name: "Sign in" }).click();
  await admin.getByRole("alert").filter({ hasText: "wrong password" }).waitFor();

  step("sign in as the demo admin; the dashboard shows totals and the events chart");
  await signIn(admin, "demo-admin", env("E2E_ADMIN_PASSWORD"));
  await admin.getByRole("heading", { name: "Dashboard" }).waitFor();
  await admin.getByRole("img", { name: /Events per hour/ }).waitFor();
  await shoot(admin, "dashboard");

  step(`search "${person.typo}" (misspelt) as you type`);
  await admin.getByRole("link", { name: "Search" }).click();
  await admin.getByLabel(/Name, email, phone/).pressSequentially(person.typo, { delay: 30 });
  const hit = admin.locator(`#results a[href="/profiles/${person.id}"]`);
  await hit.waitFor();
  await shoot(admin, "search");

  step("open the customer 360: orders and tickets from different sources");
  await hit.click();
  await admin.getByRole("heading", { name: "Timeline" }).waitFor();
  const orders = admin.locator("li.event.order");
  const tickets = admin.locator("li.event.ticket");
  assert.ok((await orders.count()) > 0, "the timeline shows orders");
  assert.ok((await tickets.count()) > 0, "the timeline shows tickets");
  const orderSource = await orders.first().locator(".source").textContent();
  const ticketSource = await tickets.first().locator(".source").textContent();
  assert.notEqual(orderSource, ticketSource, "orders and tickets come from different sources");
  await admin.getByRole("heading", { name: "Merge evidence" }).waitFor();
  step("the briefing comes first: each order followed through invoice, payment and shipment");
  await admin.getByRole("heading", { name: /Briefing/ }).waitFor();
  const trail = admin.locator("section.briefing table tbody tr").first();
  assert.match(await trail.textContent(), /ordered .*(invoiced|not invoiced)/, "an order is followed through its documents");
  await admin.locator("details.documents summary", { hasText: /^All documents \(\d+\)/ }).click();
  const statuses = await admin.locator("details.documents tbody .doc").allTextContents();
  assert.ok(statuses.length > 1 && statuses.every((s) => /^(draft|sent|accepted|ordered|invoiced|paid|overdue|shipped|delivered|void|refunded)$/.test(s)), `one list of documents with a normalised status: ${statuses}`);
  await shoot(admin, "profile");

  step("filter the timeline by kind");
  await admin.getByLabel("Kind").selectOption("ticket");
  await admin.getByRole("button", { name: "Filter" }).click();
  await admin.waitForURL(/kind=ticket/);
  assert.equal(await admin.locator("li.event.order").count(), 0, "only tickets are left");
  assert.ok((await admin.locator("li.event.ticket").count()) > 0);

  step("split a record off and see two profiles");
  const records = () => admin.locator("#split-record option");
  const before = await records().count();
  assert.ok(before > 1, "the merged profile offers its records to split off");
  await admin.getByLabel("Record to split off").selectOption({ index: before - 1 });
  await admin.getByRole("button", { name: "Split off" }).click();
  const notice = admin.getByRole("status").filter({ hasText: "Split" });
  await notice.waitFor();
  const kept = new URL(admin.url()).pathname;
  const splitOff = await notice.getByRole("link").getAttribute("href");
  assert.notEqual(kept, splitOff, "the record is in another profile now");
  assert.ok((await records().count()) < before, "the profile has fewer records");
  await shoot(admin, "profile-after-split");
  await notice.getByRole("link").click();
  await admin.getByRole("heading", { name: "Timeline" }).waitFor();
  assert.equal(new URL(admin.url()).pathname, splitOff);

  step("turn a connection off and on");
  await admin.getByRole("link", { name: "Connections" }).click();
  const ticketsSwitch = admin.getByRole("switch", { name: "tickets on" });
  assert.equal(await ticketsSwitch.getAttribute("aria-checked"), "true");
  const switchIs = (state) =>
    admin.waitForFunction((s) => document.querySelector('[aria-label="tickets on"]')?.getAttribute("aria-checked") === s, state);
  await ticketsSwitch.click();
  await switchIs("false");
  assert.ok(await admin.getByRole("button", { name: "Run tickets now" }).isDisabled(), "a source that is off cannot run");
  await shoot(admin, "connections-off");
  await admin.getByRole("switch", { name: "tickets on" }).click();
  await switchIs("true");
  await admin.getByRole("button", { name: "Run tickets now" }).click();
  await admin.getByRole("status").filter({ hasText: "Ran tickets" }).waitFor();
  await shoot(admin, "connections");

  step("add a connection from an uploaded export, edit the suggested mapping, save and run it");
  await admin.getByRole("link", { name: "Add a connection" }).click();
  // Kinship's own store is not a source, whatever table is named.
  await admin.getByLabel("Name").fill("own_store");
  await admin.locator('input[name="url_env"]').fill("KINSHIP_DATABASE_URL");
  await admin.locator('input[name="table"]').fill("tokens");
  await admin.getByRole("button", { name: "Suggest a mapping" }).click();
  await admin.getByRole("alert").filter({ hasText: "may not be one of Kinship's own" }).waitFor();
  await admin.goto(`${base}/connections/new`);
  await admin.getByLabel("Name").fill("survey_upload");
  await admin.locator('input[name="upload"]').setInputFiles(env("E2E_UPLOAD"));
  await shoot(admin, "connection-new");
  await admin.getByRole("button", { name: "Suggest a mapping" }).click();
  await admin.getByRole("heading", { name: "New connection: survey_upload" }).waitFor();
  const mapping = admin.getByLabel(/^Mapping/);
  const suggested = await mapping.inputValue();
  assert.match(suggested, /format = "month_first"/, "the month-first dates are recognised");
  assert.match(suggested, /email = "Email Address"/, "the email column is an identifier");
  await admin.getByRole("status").filter({ hasText: "0 would be rejected" }).waitFor();
  // The preview follows the mapping as it is typed: a wrong date format shows its rejects.
  await mapping.fill(suggested.replace('format = "month_first"', 'format = "day_first"'));
  await admin.getByRole("heading", { name: "Rejected rows" }).waitFor();
  await admin.getByText(/step `format`: does not fit the format day_first/).first().waitFor();
  // The editor reads only the data directory's exports, whatever the mapping says.
  await mapping.fill(suggested.replace('path = "uploads/survey_monkey.csv"', 'path = "/etc/passwd"'));
  await admin.getByRole("alert").filter({ hasText: "is not an export in the data directory" }).waitFor();
  await mapping.fill(suggested.replace('name = "Survey Answered"', 'name = "Survey Completed"'));
  await admin.getByRole("cell", { name: "Survey Completed" }).first().waitFor();
  assert.equal(await admin.getByRole("heading", { name: "Rejected rows" }).count(), 0);
  await shoot(admin, "connection-editor");
  await admin.getByRole("button", { name: "Save and run now" }).click();
  await admin.getByRole("status").filter({ hasText: /Saved survey_upload to kinship\.toml and ran it: \d+ read, [1-9]\d* new/ }).waitFor();
  await shoot(admin, "connections-added");

  step("the uploaded answers reach the customer's timeline");
  // Resolution runs beside the server, within a second or so: reload until it shows.
  const answered = admin.getByRole("heading", { name: "Timeline" });
  for (let tries = 0; ; tries++) {
    await admin.goto(`${base}/profiles/${env("E2E_RESPONDENT")}`);
    await answered.waitFor();
    if ((await admin.getByText("Survey Completed").count()) > 0) break;
    assert.ok(tries < 30, "the survey answer reached the customer's timeline within 15 s");
    await admin.waitForTimeout(500);
  }

  step("edit shows the saved mapping; delete removes it");
  await admin.getByRole("link", { name: "Connections" }).click();
  await admin.getByRole("link", { name: "Edit survey_upload" }).click();
  assert.match(await admin.getByLabel(/^Mapping/).inputValue(), /Survey Completed/);
  await admin.getByRole("link", { name: "Connections" }).click();
  admin.once("dialog", (dialog) => dialog.accept());
  await admin.getByRole("button", { name: "Delete survey_upload" }).click();
  await admin.getByRole("status").filter({ hasText: "Removed survey_upload" }).waitFor();
  assert.equal(await admin.getByRole("link", { name: "Edit survey_upload" }).count(), 0);

  step("type a segment and watch the preview count change");
  await admin.getByRole("link", { name: "Segments" }).click();
  const expression = admin.getByLabel("Expression");
  const preview = admin.locator("#preview");
  await expression.fill('count("Order Completed") >= 1');
  await preview.locator(".count").waitFor();
  const buyers = await preview.locator(".count strong").textContent();
  await expression.pressSequentially(' and count("Ticket Opened") >= 1', { delay: 10 });
  await admin.waitForFunction((n) => {
    const shown = document.querySelector("#preview .count strong");
    return shown && shown.textContent !== n;
  }, buyers);
  const both = await preview.locator(".count strong").textContent();
  assert.ok(Number(both) < Number(buyers), `the count went from ${buyers} to ${both}`);
  await expression.pressSequentially(" and", { delay: 10 });
  await preview.locator("pre.caret").waitFor();
  await shoot(admin, "segment-editor-error");
  for (let i = 0; i < 4; i++) await expression.press("Backspace");
  await preview.locator(".count").waitFor();
  await admin.getByLabel("Name").fill("buyers_with_tickets");
  await admin.getByRole("button", { name: "Save segment" }).click();
  await admin.getByRole("heading", { name: "Segment buyers_with_tickets" }).waitFor();
  await shoot(admin, "segment");
  await admin.getByRole("link", { name: "Segments" }).click();
  await admin.getByRole("img", { name: /size of buyers_with_tickets/ }).waitFor();
  await shoot(admin, "segments");

  step("the task queue holds the demo's open complaints; a task shows its context, linked to its records");
  await admin.getByRole("link", { name: "Tasks" }).click();
  await admin.getByRole("heading", { name: "Tasks" }).waitFor();
  await admin.getByRole("link", { name: "Team support" }).click();
  const firstTask = admin.locator("table.tasks tbody tr a[href^='/tasks/']").first();
  await firstTask.waitFor();
  await shoot(admin, "tasks");
  // The richest task: one whose subject names a product, so the order and stock are found.
  const damaged = admin.locator("table.tasks tbody tr a[href^='/tasks/']", { hasText: "arrived damaged" }).first();
  await (await damaged.count() ? damaged : firstTask).click();
  await admin.getByRole("heading", { name: "Context" }).waitFor();
  await admin.getByRole("rowheader", { name: "product" }).waitFor();
  await admin.getByRole("rowheader", { name: "order" }).waitFor();
  assert.ok(await admin.locator("table.context a[href*='#record-shop-']").count() >= 1, "the order links to its record on the customer's page");
  await shoot(admin, "task");
  await admin.getByRole("button", { name: "Claim" }).click();
  await admin.getByText("assigned to demo-admin").waitFor();
  await admin.getByRole("link", { name: "Tasks" }).click();
  await admin.getByRole("link", { name: "Mine" }).click();
  await admin.locator("table.tasks tbody tr").first().waitFor();

  step("the flow editor's dry run shows what the complaint flow would have done, with traces");
  await admin.getByRole("link", { name: "Flows" }).click();
  await admin.getByRole("cell", { name: "complaint_to_task" }).waitFor();
  await admin.getByLabel("Definition (TOML or JSON)").fill(env("E2E_FLOW"));
  await admin.getByLabel("Dry run over the last days").fill("3650");
  await admin.getByRole("button", { name: "Dry run" }).click();
  await admin.locator("#outcome .notice", { hasText: /runs for \d+ customers/ }).waitFor();
  await admin.locator("#outcome summary").first().click();
  await admin.locator("ol.trace li", { hasText: "trigger Ticket Opened" }).first().waitFor();
  await shoot(admin, "flow-dry-run");
  await admin.getByLabel("Definition (TOML or JSON)").fill('name = "broken"\n[trigger]\nevent = "X"\nwhen = "subject contains"\n[[steps]]\ndeliver = "nowhere"');
  await admin.getByRole("button", { name: "Dry run" }).click();
  await admin.locator("#outcome .error", { hasText: "trigger.when" }).waitFor();

  step("the measures page draws a funnel across shop, invoicing and shipping, and lists who stopped where");
  await admin.getByRole("link", { name: "Measures" }).click();
  await admin.getByRole("button", { name: "Measure funnel" }).click();
  const funnel = admin.getByRole("img", { name: /Order Completed: \d+ \(100\.0%\), Invoice Issued: \d+/ });
  await funnel.waitFor();
  await admin.getByRole("cell", { name: "Order Shipped" }).waitFor();
  await admin.getByRole("img", { name: /entered per week/ }).waitFor();
  await admin.locator("#outcome details summary", { hasText: "Stopped at step" }).first().click();
  assert.ok(await admin.locator("#outcome ul.ids a[href^='/profiles/']").count() >= 1, "the profiles behind a step link to their pages");
  await shoot(admin, "funnel");

  step("a saved funnel is listed, and one week of its trend opens the funnel of that week's entries");
  await admin.getByRole("button", { name: "Save funnel" }).click();
  await admin.locator("#outcome .notice", { hasText: "Saved" }).waitFor();
  await admin.getByRole("link", { name: "order_to_delivery" }).click();
  const firstWeek = admin.locator("table caption", { hasText: "By week of entry" }).locator("xpath=..").locator("tbody a").first();
  const week = (await firstWeek.textContent()).trim();
  await firstWeek.click();
  await admin.getByRole("heading", { name: `Funnel order_to_delivery · week of ${week} only` }).waitFor();
  await admin.getByRole("link", { name: "← the whole funnel" }).waitFor();
  await shoot(admin, "funnel-week");

  step("an experiment reads out per variant with its interval, from the demo's subject-line test");
  await admin.getByLabel("Experiment (from `Experiment Viewed` events)").fill("subject_line");
  await admin.getByLabel("Metric event (conversion to it)").fill("opened");
  await admin.getByRole("button", { name: "Read out" }).click();
  await admin.getByRole("img", { name: /lift against control/ }).waitFor();
  await admin.getByRole("cell", { name: "question", exact: true }).waitFor();
  await shoot(admin, "experiment");
  await admin.getByLabel("Experiment (from `Experiment Viewed` events)").fill("nobody_saw_this");
  await admin.getByRole("button", { name: "Read out" }).click();
  await admin.locator("#outcome .error", { hasText: "Experiment Viewed" }).waitFor();

  step("customer success: NPS over time with its interval band, earned growth by quarter, and health with its alerts and reasons");
  await admin.getByRole("link", { name: "Customer success" }).click();
  // The demo's 500 customers answer too seldom for a month to reach 30 answers: the overall
  // score has its interval, each month says it is insufficient.
  await admin.locator("p.lead", { hasText: /NPS [+-]\d+\.\d ± \d+\.\d from \d+ answers/ }).waitFor();
  await admin.getByRole("cell", { name: "insufficient" }).first().waitFor();
  await admin.getByRole("columnheader", { name: "Earned growth" }).waitFor();
  await admin.getByRole("button", { name: "Score customers" }).click();
  await admin.locator("#outcome caption", { hasText: "Lowest scores and why" }).waitFor();
  assert.ok(await admin.locator("#outcome a[href^='/profiles/']").count() >= 1, "the lowest scores link to their profiles");
  await shoot(admin, "success");
  await admin.getByRole("button", { name: "Save definition" }).click();
  await admin.locator("#outcome .notice", { hasText: "Saved" }).waitFor();
  // Saved, its alerts queue on the page as the server keeps them.
  await admin.getByRole("link", { name: "Customer success" }).click();
  await admin.getByRole("heading", { name: "Alerts: customer" }).waitFor();
  await admin.locator("p", { hasText: /^\d+ open, \d+ snoozed, \d+ held back today/ }).waitFor();
  await admin.getByRole("button", { name: "Score customers" }).click();
  await admin.locator("#outcome caption", { hasText: "Lowest scores and why" }).locator("xpath=..").locator("tbody a").first().click();
  await admin.getByRole("heading", { name: "Health" }).waitFor();
  await admin.locator("caption", { hasText: "Why: each measure's value, score, weight" }).waitFor();
  await admin.getByRole("cell", { name: "orders_90d" }).waitFor();
  await admin.getByRole("img", { name: /weekly scores over the last quarter/ }).waitFor();
  await shoot(admin, "profile-health");

  step("the case queue: open tickets by SLA due time, each running clock's state, attainment per team");
  await admin.getByRole("link", { name: "Cases", exact: true }).click();
  await admin.locator("caption", { hasText: "Case queue by SLA due time" }).waitFor();
  assert.ok((await admin.locator("table.wide tbody tr").count()) > 0, "the demo's open tickets are queued");
  await admin.locator("table.wide .sla-breached").first().waitFor();
  await admin.getByRole("heading", { name: "SLA attainment, last 30 days" }).waitFor();
  await admin.getByRole("link", { name: /^breached/ }).click();
  await admin.waitForURL(/state=breached/);
  await shoot(admin, "cases");
  step("a case: its clocks and conversation; a connected help desk's case is answered there");
  await admin.locator("table.queue tbody a[href^='/cases/']").first().click();
  await admin.getByRole("heading", { name: "SLA clocks" }).waitFor();
  await admin.locator("td .sla-breached").first().waitFor();
  await admin.getByText("answer and update it there").waitFor();
  await shoot(admin, "case");

  step("an account: people grouped by their company's email domain, with their orders");
  await admin.getByRole("link", { name: "Accounts", exact: true }).click();
  const accounts = await admin.locator("table tbody a[href^='/accounts/domain']").evaluateAll((links) => links.map((a) => a.getAttribute("href")));
  assert.ok(accounts.length > 0, "the demo's business domains make accounts");
  let withOrders = false;
  for (const href of accounts.slice(0, 6)) {
    await admin.goto(`${base}${href}`);
    await admin.getByRole("heading", { name: "People" }).waitFor();
    assert.ok((await admin.locator("section[aria-labelledby='people-title'] tbody tr").count()) > 1, "an account holds several people");
    if ((await admin.getByRole("heading", { name: "Latest orders" }).count()) > 0) {
      withOrders = true;
      // Scored on its people's orders, tickets and answers together.
      await admin.getByRole("heading", { name: "Health" }).waitFor();
      await admin.getByRole("img", { name: /weekly scores over the last quarter/ }).waitFor();
      break;
    }
  }
  assert.ok(withOrders, "one of the largest accounts has orders, followed through invoice and shipment");
  await shoot(admin, "account");
  await admin.getByRole("link", { name: "Accounts", exact: true }).click();
  await admin.getByRole("link", { name: "health customer, lowest first" }).click();
  await admin.getByRole("columnheader", { name: "Health" }).waitFor();
  const bands = await admin.locator("table tbody .band").allTextContents();
  assert.ok(bands.length > 0 && bands.every((b) => ["red", "yellow", "green"].includes(b)), `accounts by health: ${bands}`);

  step("the pipeline board: a deal opened on a customer's page, dragged to the next stage with the mouse, then moved by keyboard on a phone");
  await admin.goto(`${base}/profiles/${encodeURIComponent(person.id)}`);
  await admin.getByText("Open a deal with this customer").click();
  const dealForm = admin.locator("form[action$='/deals']");
  await dealForm.getByLabel("Name").fill("E2E gifting");
  await dealForm.getByLabel("Amount").fill("2,500");
  await dealForm.getByLabel("Expected close").fill("2025-07-31");
  await dealForm.getByRole("button", { name: "Open deal" }).click();
  await admin.getByRole("heading", { name: "Deals", exact: true }).waitFor();
  const inStage = (stage) => admin.locator(`.column[data-stage='${stage}'] li.card`, { hasText: "E2E gifting" });
  await inStage("Prospecting").waitFor();
  assert.ok((await admin.locator(".board li.card").count()) > 1, "the demo CRM's deals are on the board too");
  // Taken by its title, not by the form inside it, and dropped on the next column.
  const from = await inStage("Prospecting").boundingBox();
  const to = await admin.locator(".column[data-stage='Qualification']").boundingBox();
  await admin.mouse.move(from.x + 12, from.y + 10);
  await admin.mouse.down();
  await admin.mouse.move(to.x + to.width / 2, to.y + 30, { steps: 8 });
  await admin.mouse.up();
  await inStage("Qualification").waitFor();
  await admin.setViewportSize({ width: 390, height: 844 });
  await inStage("Qualification").focus();
  await admin.keyboard.press("ArrowRight");
  await inStage("Proposal").waitFor();
  assert.equal(await admin.evaluate(() => document.activeElement?.closest("li.card")?.textContent?.includes("E2E gifting")), true, "focus returns to the moved card");
  await admin.setViewportSize({ width: 1280, height: 900 });
  await admin.getByRole("heading", { name: "Weighted forecast by close month" }).waitFor();
  await admin.getByRole("img", { name: /Deals reaching each stage/ }).waitFor();
  await shoot(admin, "deals");

  step("the audit log names the admin's reads and changes");
  await admin.getByRole("link", { name: "Audit" }).click();
  await admin.getByRole("cell", { name: "split", exact: true }).first().waitFor();
  await shoot(admin, "audit");

  step("a marketer sees contact details masked, and no admin pages");
  const marketer = await (await browser.newContext()).newPage({ viewport: { width: 1280, height: 900 } });
  marketer.setDefaultTimeout(15000);
  await signIn(marketer, "demo-marketer", env("E2E_MARKETER_PASSWORD"));
  assert.equal(await marketer.getByRole("link", { name: "Audit" }).count(), 0, "no audit link for a marketer");
  assert.equal(await marketer.getByRole("link", { name: "Tasks" }).count(), 0, "no task queue for a marketer");
  await marketer.goto(`${base}/search?q=${encodeURIComponent(person.fullName)}`);
  await marketer.locator(`#results a[href="/profiles/${person.id}"]`).waitFor();
  const results = await marketer.locator("#results").textContent();
  assert.ok(!results.toLowerCase().includes(person.email.toLowerCase()), "the email is not shown to a marketer");
  assert.match(results, /\*\*\*/, "contact details are masked");
  await shoot(marketer, "marketer-search");
  await marketer.locator(`#results a[href="/profiles/${person.id}"]`).click();
  await marketer.getByRole("heading", { name: "Timeline" }).waitFor();
  const html = await marketer.content();
  assert.ok(!html.toLowerCase().includes(person.email.toLowerCase()), "the 360 page holds no raw email for a marketer");
  assert.equal(await marketer.getByRole("heading", { name: "Merge evidence" }).count(), 0, "no match evidence for a marketer");
  await shoot(marketer, "marketer-profile");
  const audit = await marketer.goto(`${base}/audit`);
  assert.equal(audit.status(), 403, "the audit viewer refuses a marketer");

  step("keyboard: the skip link is the first stop and leads to the content");
  await admin.goto(`${base}/`);
  await admin.keyboard.press("Tab");
  assert.equal(await admin.evaluate(() => document.activeElement.textContent), "Skip to content");
  console.log("all steps passed");
} finally {
  await browser.close();
}
