// webhook2fedmsg's end-to-end test: a person's walk through the site in
// Debian's headless Chromium, driven by playwright-core (which never
// downloads a browser of its own here).
//
//   node e2e.mjs http://127.0.0.1:PORT
//
// The site must log in with the test provider of tests/oidc (user alice).
// The walk: home page, log in, add a GitHub token, copy its URL and secret
// off the page, deliver a signed push to it, see the delivery listed,
// rename, rotate, disable, enable, remove, log out. Deliveries are sent by
// this script, as GitHub would send them: fixtures/github/push.new-branch.json
// signed over the exact bytes sent.
//
// Every step ends with a full-page screenshot NN-step.png in $SCREENSHOTS
// (when set). Any console error, uncaught page error, CSP violation or
// failed request fails the step it happened in. On failure the script says
// which step and why on stderr and exits 1; on success it prints one JSON
// line on stdout summarising what it saw (never a secret).
import { createHmac, randomUUID } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

import { chromium } from "playwright-core";

// Debian's Chromium, and the flags it needs as root in a container.
const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
// The whole walk normally takes a few seconds; the caller has its own bound.
const DEADLINE_MS = 90_000;
const STEP_TIMEOUT_MS = 10_000;

const LABEL = "Café Ωmega – <b>markup</b>";
const NEW_LABEL = "Ærøskøbing → mirror";
const FIXTURE = new URL("../../fixtures/github/push.new-branch.json", import.meta.url);

class Failed extends Error {}

function expect(condition, message) {
  if (!condition) {
    throw new Failed(message);
  }
}

function log(message) {
  process.stderr.write(`e2e: ${message}\n`);
}

// --- The webhook sender ------------------------------------------------------

const fixture = JSON.parse(readFileSync(FIXTURE, "utf8"));

// POSTs the push fixture to `url` as GitHub would, signed with `secret`.
// `ref` changes the pushed branch, making a new delivery rather than a
// replay of the first one. Returns the status and the JSON answer.
async function deliver(url, secret, ref) {
  const body = Buffer.from(JSON.stringify(ref ? { ...fixture.body, ref } : fixture.body));
  const sign = (algorithm) => createHmac(algorithm, secret).update(body).digest("hex");
  const headers = {};
  for (const [name, value] of Object.entries(fixture.headers)) {
    headers[name] = value;
  }
  headers["X-Hub-Signature-256"] = `sha256=${sign("sha256")}`;
  headers["X-Hub-Signature"] = `sha1=${sign("sha1")}`;
  headers["X-GitHub-Delivery"] = randomUUID();
  headers["Content-Type"] = "application/json";

  const response = await fetch(url, {
    method: "POST",
    headers,
    body,
    redirect: "manual",
    signal: AbortSignal.timeout(STEP_TIMEOUT_MS),
  });
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // Left null: the caller's expectation names the status.
  }
  return { status: response.status, json };
}

// --- The browser and what it reports ---------------------------------------

const site = process.argv[2];
if (!site || !/^http:\/\/127\.0\.0\.1:\d+$/.test(site)) {
  log("usage: node e2e.mjs http://127.0.0.1:PORT (the site under test, on loopback)");
  process.exit(2);
}
const screenshots = process.env.SCREENSHOTS;
if (screenshots) {
  mkdirSync(screenshots, { recursive: true });
}

// Problems the browser reported on our pages since the last step ended.
// The test provider's own pages are not ours to judge (it has no favicon,
// for one): what they log is counted apart.
const problems = [];
const seen = { steps: [], console_errors: 0, csp_violations: 0, provider_console_errors: 0 };

function isOurs(url) {
  return url === site || url.startsWith(`${site}/`);
}

function watch(page) {
  const report = (problem, source) => {
    if (isOurs(page.url()) || isOurs(source ?? "")) {
      problems.push(problem);
      return true;
    }
    seen.provider_console_errors += 1;
    log(`(the provider's page logged: ${problem})`);
    return false;
  };
  page.on("console", (message) => {
    if (message.type() !== "error") {
      return;
    }
    const text = message.text();
    const source = message.location().url;
    const where = source && source !== page.url() ? ` (${source})` : "";
    if (report(`console error on ${page.url()}: ${text}${where}`, source)) {
      seen.console_errors += 1;
      if (/Content.Security.Policy/i.test(text)) {
        seen.csp_violations += 1;
      }
    }
  });
  page.on("pageerror", (error) => {
    if (report(`uncaught error on ${page.url()}: ${error.message}`)) {
      seen.console_errors += 1;
    }
  });
  page.on("requestfailed", (request) => {
    const reason = request.failure()?.errorText;
    // Aborted is the browser leaving a page before all of it loaded.
    if (reason !== "net::ERR_ABORTED") {
      report(`request failed: ${request.url()} (${reason})`, request.url());
    }
  });
}

// Reports CSP violations from inside each page too: Chromium logs them to
// the console, and this names the directive even if the message changes.
const REPORT_CSP = `
  document.addEventListener("securitypolicyviolation", (event) => {
    console.error("CSP violation: " + event.violatedDirective + " blocked " +
      (event.blockedURI || "inline") + " at " + event.sourceFile + ":" + event.lineNumber);
  });
`;

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: CHROMIUM_FLAGS,
  timeout: 30_000,
});
const context = await browser.newContext({
  viewport: DESKTOP,
  permissions: ["clipboard-read", "clipboard-write"],
});
await context.addInitScript(REPORT_CSP);
const page = await context.newPage();
page.setDefaultTimeout(STEP_TIMEOUT_MS);
watch(page);

const deadline = setTimeout(() => {
  log(`FAILED: the walk took longer than ${DEADLINE_MS / 1000} s`);
  browser.close().finally(() => process.exit(1));
}, DEADLINE_MS);

let stepNumber = 0;

// Runs one step of the walk, then checks the browser reported nothing
// wrong and takes the step's screenshot.
async function step(name, work) {
  stepNumber += 1;
  const tag = `${String(stepNumber).padStart(2, "0")}-${name}`;
  try {
    await work();
    await page.waitForLoadState("load");
    expect(problems.length === 0, `the browser reported:\n  ${problems.join("\n  ")}`);
  } catch (error) {
    log(`FAILED at step ${tag} (page ${page.url()}): ${error.message}`);
    await shoot(`${tag}-failed`).catch(() => {});
    throw error;
  }
  await shoot(tag);
  seen.steps.push(name);
  log(`${tag} ok`);
}

async function shoot(name) {
  if (screenshots) {
    await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
  }
}

const onSite = (path) => new RegExp(`^${site.replace(/[.]/g, "\\.")}${path}`);

// The visible text of a locator, spaces squeezed.
async function textOf(locator) {
  return (await locator.innerText()).replace(/\s+/g, " ").trim();
}

// The card of the token labelled `label` on /tokens.
function card(label) {
  return page.locator("article.token", {
    has: page.getByRole("heading", { level: 3, name: label, exact: true }),
  });
}

// Opens a card's "Change this token" section.
async function openChanges(token) {
  const details = token.locator("details");
  if (!(await details.evaluate((element) => element.open))) {
    await details.getByText("Change this token").click();
  }
  return details;
}

// Makes the page break its own CSP once and checks the watch above saw
// it: without this, a Chromium that logged violations differently would
// let every later check pass unseen.
async function checkCspWatch() {
  const before = problems.length;
  const isCsp = (problem) => /Content Security Policy|CSP violation/.test(problem);
  await page.evaluate(() => {
    const script = document.createElement("script");
    script.textContent = "void 0;";
    document.head.append(script);
  });
  for (let waited = 0; waited < 2000; waited += 50) {
    if (problems.slice(before).some(isCsp)) {
      break;
    }
    await page.waitForTimeout(50);
  }
  // Chromium's own message and our listener's may arrive apart.
  await page.waitForTimeout(200);
  const caught = problems.splice(before);
  expect(caught.some(isCsp), "an inline script was blocked but the watch did not see it");
  seen.console_errors = 0;
  seen.csp_violations = 0;
}

// --- The walk ----------------------------------------------------------------

const state = {};

async function walk() {
  await step("home", async () => {
    const response = await page.goto(site);
    expect(response.status() === 200, `the home page answered ${response.status()}`);
    expect(
      response.headers()["content-security-policy"]?.includes("default-src 'none'"),
      "the home page has no Content-Security-Policy",
    );
    await page.getByRole("heading", { name: "Webhooks to Fedora Messaging" }).waitFor();
    await checkCspWatch();
  });

  await step("provider-login-form", async () => {
    await page.getByRole("link", { name: "Log in", exact: true }).click();
    await page.getByLabel("Username").waitFor();
    const provider = new URL(page.url());
    expect(provider.origin !== site, `the login did not go to the provider: ${page.url()}`);
    state.provider = provider.origin;
  });

  await step("logged-in", async () => {
    await page.getByLabel("Username").fill("alice");
    await page.getByRole("button", { name: "Log in" }).click();
    await page.waitForURL(onSite("/tokens$"));
    await page.getByRole("heading", { name: "Your tokens" }).waitFor();
    const who = await textOf(page.locator("header.top .who"));
    expect(who.startsWith("alice"), `the header names ${JSON.stringify(who)}, not alice`);
    expect(who.includes("admin"), "alice (in sysadmin-main) is not shown as an admin");
    await page.getByText("You have no tokens yet").waitFor();
  });

  await step("token-added", async () => {
    const add = page.locator("#add");
    await add.getByLabel("Service").selectOption({ label: "GitHub" });
    await add.getByLabel("Label").fill(LABEL);
    await add.getByRole("button", { name: "Add token" }).click();

    const heading = page.getByRole("heading", { level: 1, name: /^Your new GitHub token/ });
    await heading.waitFor();
    const text = await heading.innerText();
    expect(text.includes(LABEL), `the heading does not show the label as typed: ${text}`);
    expect((await heading.locator("b").count()) === 0, "the label's <b> became markup");
    await page.getByText("it is shown only this once").waitFor();

    // Read as a person would: the visible fields, and the copy button.
    const url = page.getByLabel("Webhook URL");
    const secret = page.getByLabel("Secret");
    expect(await url.isVisible(), "the webhook URL is not visible");
    expect(await secret.isVisible(), "the secret is not visible");
    state.url = await url.inputValue();
    state.secret = await secret.inputValue();
    expect(state.url.startsWith(`${site}/github/`), `unexpected webhook URL ${state.url}`);
    expect(/^[0-9a-f]{64}$/.test(state.secret), "the generated secret is not 64 hex digits");
    state.copied_url = await copy("hook-url", state.url);
  });

  await step("token-listed", async () => {
    await page.getByRole("link", { name: "Back to your tokens" }).click();
    await page.waitForURL(onSite("/tokens\\?notice=added#token-"));
    await page.getByRole("status").getByText("The token was added.").waitFor();
    state.token_id = new URL(page.url()).hash.slice("#token-".length);
    const token = card(LABEL);
    await token.waitFor();
    expect((await token.locator("h3 b").count()) === 0, "the label's <b> became markup");
    expect(
      (await token.getByLabel("Webhook URL").inputValue()) === state.url,
      "the card shows another URL",
    );
    await token.getByText("None yet").waitFor();
    const copyButton = token.getByRole("button", { name: "Copy" });
    expect(await copyButton.isVisible(), "the card's copy button is not visible");
    expect(
      !(await page.content()).includes(state.secret),
      "the secret is still on the page after it was shown once",
    );
  });

  await step("delivery-listed", async () => {
    const { status, json } = await deliver(state.url, state.secret);
    expect(status === 202, `the signed push got ${status}: ${JSON.stringify(json)}`);
    state.message_ids = [json.message_id];

    await page.reload();
    const row = card(LABEL).locator("table.deliveries tbody tr");
    await row.first().waitFor();
    expect((await row.count()) === 1, `expected one delivery row, saw ${await row.count()}`);
    const cells = await row.first().locator("td").allInnerTexts();
    expect(cells[1] === "github.push", `the delivery's event is ${cells[1]}`);
    expect(cells[3] === json.message_id, `the row shows message ${cells[3]}`);
    state.first_outcome = cells[2];
    const last = await textOf(card(LABEL).locator("dd.last-delivery"));
    expect(last !== "never", "the last delivery still says never");
  });

  await step("phone", async () => {
    await page.setViewportSize(PHONE);
    const widths = await page.evaluate(() => ({
      page: document.documentElement.scrollWidth,
      screen: window.innerWidth,
    }));
    expect(
      widths.page <= widths.screen,
      `at ${PHONE.width} px the page is ${widths.page} px wide: it scrolls sideways`,
    );
    const url = card(LABEL).getByLabel("Webhook URL");
    const box = await url.boundingBox();
    expect(box && box.width >= 200, `at ${PHONE.width} px the URL field is ${box?.width} px wide`);
  });
  await page.setViewportSize(DESKTOP);

  await step("renamed", async () => {
    const changes = await openChanges(card(LABEL));
    await changes.getByLabel("Label").fill(NEW_LABEL);
    await changes.getByRole("button", { name: "Rename" }).click();
    await page.waitForURL(onSite("/tokens\\?notice=renamed"));
    await page.getByRole("status").getByText("The label was changed.").waitFor();
    await card(NEW_LABEL).waitFor();
    expect((await card(LABEL).count()) === 0, "the old label is still shown");
  });

  await step("rotated", async () => {
    const changes = await openChanges(card(NEW_LABEL));
    await changes.getByLabel("Old secret keeps working").selectOption({
      label: "no longer: stop it now",
    });
    await changes.getByRole("button", { name: "Rotate secret" }).click();
    await page.getByRole("heading", { level: 1, name: `New secret for “${NEW_LABEL}”` }).waitFor();
    await page.getByText("it is shown only this once").waitFor();
    const secret = await page.getByLabel("Secret").inputValue();
    expect(/^[0-9a-f]{64}$/.test(secret), "the new secret is not 64 hex digits");
    expect(secret !== state.secret, "the rotated secret is the old one");
    expect(
      (await page.getByLabel("Webhook URL").inputValue()) === state.url,
      "rotating changed the URL",
    );
    state.old_secret = state.secret;
    state.secret = secret;

    const old = await deliver(state.url, state.old_secret);
    expect(old.status === 401, `a push signed with the old secret got ${old.status}`);
  });

  await step("back-after-rotation", async () => {
    await page.getByRole("link", { name: "Back to your tokens" }).click();
    await page.waitForURL(onSite("/tokens\\?notice=rotated#token-"));
    await page.getByRole("status").getByText("The secret was changed.").waitFor();
    expect(
      !(await page.content()).includes(state.secret),
      "the new secret is still on the page after it was shown once",
    );
  });

  await step("disabled", async () => {
    const changes = await openChanges(card(NEW_LABEL));
    await changes.getByRole("button", { name: "Disable" }).click();
    await page.waitForURL(onSite("/tokens\\?notice=disabled"));
    await page.getByRole("status").getByText("The token is disabled").waitFor();
    const badge = await textOf(card(NEW_LABEL).locator("header .badge"));
    expect(badge === "disabled", `the card's badge says ${badge}`);

    const { status } = await deliver(state.url, state.secret);
    expect(status === 403, `a push to the disabled token got ${status}`);
  });

  await step("enabled", async () => {
    const changes = await openChanges(card(NEW_LABEL));
    await changes.getByRole("button", { name: "Enable" }).click();
    await page.waitForURL(onSite("/tokens\\?notice=enabled"));
    await page.getByRole("status").getByText("The token is enabled").waitFor();
    const badge = await textOf(card(NEW_LABEL).locator("header .badge"));
    expect(badge === "enabled", `the card's badge says ${badge}`);

    const { status, json } = await deliver(state.url, state.secret, "refs/heads/after-enable");
    expect(status === 202, `a push with the new secret got ${status}: ${JSON.stringify(json)}`);
    state.message_ids.push(json.message_id);
    await page.reload();
    const ids = await card(NEW_LABEL)
      .locator("table.deliveries tbody tr td:nth-child(4)")
      .allInnerTexts();
    expect(ids.includes(json.message_id), `the new delivery is not listed: ${ids.join(", ")}`);
  });

  await step("remove-confirm", async () => {
    const changes = await openChanges(card(NEW_LABEL));
    await changes.getByRole("link", { name: "Remove this token…" }).click();
    await page.getByRole("heading", { name: `Remove “${NEW_LABEL}”?` }).waitFor();
    await page.getByText("This cannot be undone.").waitFor();
  });

  await step("removed", async () => {
    await page.getByRole("button", { name: "Remove the token" }).click();
    await page.waitForURL(onSite("/tokens\\?notice=removed"));
    await page.getByRole("status").getByText("The token was removed").waitFor();
    expect((await page.locator("article.token").count()) === 0, "a token card is still shown");
    await page.getByText("You have no tokens yet").waitFor();

    const { status } = await deliver(state.url, state.secret);
    expect(status === 404, `a push to the removed token's URL got ${status}`);
  });

  await step("logged-out", async () => {
    await page.getByRole("button", { name: "Log out" }).click();
    await page.waitForURL(onSite("/$"));
    await page.getByRole("link", { name: "Log in", exact: true }).waitFor();
    const cookies = await context.cookies(site);
    expect(
      !cookies.some((cookie) => cookie.name === "w2f_session"),
      "the session cookie is still set",
    );
  });

  await step("tokens-needs-login", async () => {
    const answer = await page.request.get(`${site}/tokens`, { maxRedirects: 0 });
    expect(answer.status() === 303, `/tokens answered ${answer.status()} after logout`);
    const location = answer.headers().location;
    expect(location === "/login?next=/tokens", `/tokens sent us to ${location}`);

    // A person typing the address ends up at the provider. It still has
    // alice's session (logging out here does not log out there), so it may
    // send her straight back; the first hop is what this site decides.
    const response = await page.goto(`${site}/tokens`);
    const hops = [];
    for (let request = response.request(); request; request = request.redirectedFrom()) {
      hops.unshift(request.url());
    }
    expect(
      hops[1] === `${site}/login?next=/tokens`,
      `/tokens did not send us to the login: ${hops.join(" -> ")}`,
    );
    expect(
      hops.some((url) => url.startsWith(state.provider)),
      `the login did not reach the provider: ${hops.join(" -> ")}`,
    );
    state.after_logout = page.url();
  });
}

// Clicks the copy button of the field `id`, checks it says so and that the
// clipboard now holds `expected`. Returns whether the clipboard was read.
async function copy(id, expected) {
  const button = page.locator(`button[data-copy="${id}"]`);
  expect(await button.isVisible(), `the copy button of #${id} is not visible`);
  await button.click();
  await page.locator(`button[data-copy="${id}"]`, { hasText: "Copied" }).waitFor();
  const clipboard = await page.evaluate(() => navigator.clipboard.readText());
  expect(clipboard === expected, `the clipboard holds ${JSON.stringify(clipboard)}`);
  return true;
}

try {
  await walk();
} catch (error) {
  if (!(error instanceof Failed)) {
    log(error.stack ?? String(error));
  }
  clearTimeout(deadline);
  await browser.close();
  process.exit(1);
}
clearTimeout(deadline);
const version = browser.version();
await browser.close();

process.stdout.write(
  `${JSON.stringify({
    ok: true,
    browser: `chromium ${version}`,
    steps: seen.steps,
    token_id: state.token_id,
    message_ids: state.message_ids,
    first_outcome: state.first_outcome,
    copied_url: state.copied_url,
    after_logout: state.after_logout,
    console_errors: seen.console_errors,
    csp_violations: seen.csp_violations,
  })}\n`,
);
