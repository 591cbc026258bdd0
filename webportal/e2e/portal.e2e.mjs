// Browser scenarios for the portal, run by webportal/e2e_test.go:
//   node e2e/portal.e2e.mjs SCENARIO
// with PORTAL_E2E (the test world as JSON: URL, Project, Alice/Admin keypairs,
// CPULimit), PORTAL_ARTIFACTS (where screenshots go) and CHROMIUM set.
// Playwright drives Debian's Chromium headless; nothing is downloaded.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const world = JSON.parse(process.env.PORTAL_E2E ?? "{}");
const out = process.env.PORTAL_ARTIFACTS ?? "e2e/artifacts";
const scenario = process.argv[2];

function log(...a) {
  console.log(`[${new Date().toISOString().slice(11, 23)}] ${scenario}:`, ...a);
}

async function browser(viewport = { width: 1280, height: 860 }) {
  const dir = mkdtempSync(join(tmpdir(), "portal-e2e-"));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    viewport,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  page.setDefaultTimeout(20_000);
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of (401|403|404)/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  return {
    page,
    problems,
    async close() {
      await ctx.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function shot(page, name) {
  await page.screenshot({ path: join(out, `${scenario}-${name}.png`), fullPage: true });
  log(`screenshot ${scenario}-${name}.png`);
}

// signInKeypair uses the API keypair form (folded away when password login is offered).
async function signInKeypair(page, kp) {
  await page.goto(world.URL + "/");
  await page.waitForURL(/\/login/);
  await page.getByRole("heading", { name: "Slurmgate" }).waitFor();
  const alt = page.getByText("Use an API keypair instead");
  if (await alt.isVisible()) await alt.click();
  await page.getByLabel("Access key").fill(kp.access_key);
  await page.getByLabel("Secret key").fill(kp.secret_key);
  await page.getByRole("button", { name: "Sign in with keypair" }).click();
  await page.getByRole("heading", { name: "Your sessions" }).waitFor();
}

// signInLDAP uses the username/password form, which the gateway checks against the directory.
async function signInLDAP(page, user, password) {
  await page.goto(world.URL + "/");
  await page.waitForURL(/\/login/);
  await page.getByLabel("Username").fill(user);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("heading", { name: "Your sessions" }).waitFor();
}

// signInOIDC follows the "Sign in with …" button through the OpenID Provider's login form and back.
async function signInOIDC(page, user, password, next = "/") {
  await page.goto(world.URL + next);
  await page.waitForURL(/\/login/);
  await page.getByRole("link", { name: `Sign in with ${world.OIDCName}` }).click();
  await page.locator('input[name="username"]').fill(user);
  await page.locator('input[name="password"]').fill(password);
  await Promise.all([page.waitForURL((u) => u.href.startsWith(world.URL) && !u.pathname.startsWith("/login")), page.locator('input[name="password"]').press("Enter")]);
}

function expect(cond, what) {
  if (!cond) throw new Error(`expected ${what}`);
}

const scenarios = {
  // Alice signs in, launches a batch session, and watches it finish with its output.
  async batch({ page }) {
    await page.goto(world.URL + "/login");
    await page.getByRole("link", { name: `Sign in with ${world.OIDCName}` }).waitFor();
    await shot(page, "login");
    await signInLDAP(page, "alice", world.AliceLDAPPassword);
    await page.locator(".quota-row").first().waitFor();
    await shot(page, "dashboard-empty");
    await page.getByRole("link", { name: "Launch a session" }).click();
    await page.getByRole("heading", { name: "Launch a session" }).waitFor();
    await page.getByLabel("Name").fill("portal-batch");
    await page.getByLabel("Image").selectOption("host:latest");
    await page.getByLabel("CPUs").fill("1");
    await page.getByLabel("Memory (GiB)").fill("0.25");
    await page.getByLabel("Project").selectOption(world.Project);
    await page.getByLabel("Command", { exact: true }).fill("echo hello-from-the-portal; sleep 3; echo all-done");
    await page.getByLabel("Minutes").fill("5");
    await page.getByLabel("Hours").fill("0");
    await shot(page, "launch-form");
    await page.getByRole("button", { name: "Launch", exact: true }).click();
    await page.waitForURL(/\/sessions\/[^/]+$/);
    log("session page", page.url());
    await page.locator("h1 .badge").waitFor();
    await shot(page, "session-started");
    // Live state over SSE: the badge reaches TERMINATED without a reload.
    await page.locator('h1 .badge[data-state="TERMINATED"]').waitFor({ timeout: 120_000 });
    await page.locator("pre.logs", { hasText: "all-done" }).waitFor({ timeout: 30_000 });
    const logs = await page.locator("pre.logs").textContent();
    expect(logs.includes("hello-from-the-portal"), `the logs to hold the command's output, got ${JSON.stringify(logs)}`);
    await page.locator(".timeline li", { hasText: "TERMINATED" }).first().waitFor();
    expect((await page.locator('[data-fact="exit code"]').textContent()) === "0", "exit code 0");
    await shot(page, "session-finished");
    await page.getByRole("link", { name: "Sessions" }).click();
    await page.locator('.session-row[data-state="TERMINATED"]', { hasText: "portal-batch" }).waitFor();
    await shot(page, "dashboard-finished");
  },

  // Asking for more CPUs than alice's policy allows shows the refusal naming the limit.
  async "over-quota"({ page }) {
    // Through the OpenID Provider, straight back to the page asked for.
    await signInOIDC(page, "alice", world.AliceOIDCPassword, "/launch");
    await page.getByRole("heading", { name: "Launch a session" }).waitFor();
    await page.getByLabel("CPUs").fill(String(world.CPULimit + 2));
    await page.getByLabel("Memory (GiB)").fill("0.25");
    await page.getByLabel("Command", { exact: true }).fill("true");
    await page.getByRole("button", { name: "Launch", exact: true }).click();
    const alert = page.locator('[role="alert"][data-limit="cpus"]');
    await alert.waitFor();
    const text = await alert.textContent();
    log("refusal:", text);
    expect(text.includes(`limit of ${world.CPULimit} CPUs`) && text.includes("Limit: cpus of user alice"), `the refusal to name the CPU limit, got ${JSON.stringify(text)}`);
    expect(page.url().endsWith("/launch"), "to stay on the form");
    await shot(page, "refused");
  },

  // An interactive session: open the terminal, run a command, see its
  // output; then sign out in another tab and see the open terminal close.
  async terminal({ page }) {
    await signInLDAP(page, "alice", world.AliceLDAPPassword);
    await page.goto(world.URL + "/launch");
    await page.getByLabel("Interactive").check();
    await page.getByLabel("Name").fill("portal-shell");
    await page.getByLabel("CPUs").fill("1");
    await page.getByLabel("Memory (GiB)").fill("0.25");
    await page.getByLabel("Minutes").fill("10");
    await page.getByLabel("Hours").fill("0");
    await page.getByRole("button", { name: "Launch", exact: true }).click();
    await page.waitForURL(/\/sessions\/[^/]+$/);
    await page.locator('h1 .badge[data-state="RUNNING"]').waitFor({ timeout: 120_000 });
    // The terminal needs the session's agent connected to the gateway.
    const id = page.url().split("/").pop();
    const connected = await page.evaluate(async (url) => {
      for (let i = 0; i < 40; i++) {
        const r = await fetch(url, { credentials: "same-origin" });
        if (r.ok && (await r.json()).agent_connected) return true;
        await new Promise((res) => setTimeout(res, 500));
      }
      return false;
    }, `/api/v1/sessions/${id}/apps`);
    if (!connected) {
      await shot(page, "no-agent");
      throw Object.assign(new Error("the session's agent never connected to the gateway"), { exitCode: agentMissingExit });
    }
    await page.getByRole("button", { name: "Open terminal" }).click();
    await page.locator(".terminal .xterm").waitFor();
    await page.locator(".terminal textarea").focus();
    await page.keyboard.type("echo portal-$((6*7))\n", { delay: 20 });
    await page.locator(".terminal .xterm-rows", { hasText: "portal-42" }).waitFor({ timeout: 20_000 });
    await shot(page, "terminal");
    // Sign out from a second tab: the gateway must close this tab's terminal.
    const other = await page.context().newPage();
    await other.goto(page.url());
    await other.getByRole("button", { name: "Sign out" }).click();
    await other.waitForURL(/\/login/);
    const t0 = Date.now();
    await page.locator(".terminal[data-closed]").waitFor({ timeout: 5_000 });
    log(`terminal closed ${Date.now() - t0} ms after sign-out`);
    await shot(page, "terminal-closed");
    await other.close();
  },

  // Alice creates a keypair (its secret shown once), then revokes it.
  async keypairs({ page }) {
    await signInLDAP(page, "alice", world.AliceLDAPPassword);
    await page.getByRole("link", { name: "Keypairs" }).click();
    await page.getByRole("heading", { name: "API keypairs" }).waitFor();
    await page.getByLabel("Description").fill("laptop CLI");
    await page.getByRole("button", { name: "Create keypair" }).click();
    const secret = page.locator("[data-secret-key]");
    await secret.waitFor();
    const ak = (await page.locator("code[data-access-key]").textContent()).trim();
    expect((await secret.textContent()).trim().length >= 20, "a secret key shown once");
    await page.locator(`tr[data-access-key="${ak}"]`).waitFor();
    await shot(page, "created");
    page.once("dialog", (d) => d.accept());
    await page.getByRole("button", { name: `Revoke keypair ${ak}` }).click();
    await page.locator(`tr[data-access-key="${ak}"]`).waitFor({ state: "detached" });
    await page.reload();
    expect((await page.locator("[data-secret-key]").count()) === 0, "the secret not shown again");
  },

  // The superadmin creates a project, adds bob, and signs out.
  async admin({ page }) {
    await signInKeypair(page, world.Admin);
    await page.getByRole("link", { name: "Admin" }).click();
    await page.getByRole("heading", { name: "Admin: Projects & members" }).waitFor();
    await page.getByLabel("Domain").selectOption(world.Domain);
    await page.getByLabel("Name").fill("robotics");
    await page.getByLabel("Description").fill("made in the browser test");
    await page.getByRole("button", { name: "Create project" }).click();
    const path = `${world.Domain}/robotics`;
    await page.locator(`tr[data-project="${path}"]`).waitFor();
    await page.getByRole("heading", { name: `Members of ${path}` }).waitFor();
    await page.getByLabel("User").selectOption({ label: "bob (Bob)" });
    await page.getByRole("button", { name: "Add member" }).click();
    await page.locator('tr[data-member="bob"]').waitFor();
    await shot(page, "project-with-bob");
    for (const section of ["Images", "Policies", "Cluster"]) {
      await page.getByRole("link", { name: section, exact: true }).click();
      await page.getByRole("heading", { name: new RegExp(`^Admin: ${section}`) }).waitFor();
      await page.locator(".card").first().waitFor();
      await shot(page, section.toLowerCase());
    }
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(/\/login\?signed_out=1/);
    await page.getByText("You are signed out.").waitFor();
    // Signed out means signed out: a portal page sends us back to the login.
    await page.goto(world.URL + "/admin");
    await page.waitForURL(/\/login/);
    await shot(page, "signed-out");
  },

  // The dashboard and a session page on a phone-sized screen.
  async phone({ page }) {
    await signInLDAP(page, "alice", world.AliceLDAPPassword);
    await page.getByLabel("Only active sessions").uncheck();
    await page.locator(".session-row").first().waitFor();
    await shot(page, "dashboard");
    await page.locator(".session-row a").first().click();
    await page.locator("h1 .badge").waitFor();
    await shot(page, "session");
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow <= 1, `no sideways scrolling on a phone, page is ${overflow}px too wide`);
  },
};

// The exit status that says an interactive session's agent never connected.
const agentMissingExit = 3;

const run = scenarios[scenario];
if (!run) {
  console.error(`unknown scenario ${scenario}; known: ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
const b = await browser(scenario === "phone" ? { width: 390, height: 844 } : undefined);
try {
  await run(b);
  if (b.problems.length) throw new Error(`the page reported errors:\n  ${b.problems.join("\n  ")}`);
  log("ok");
} catch (e) {
  await shot(b.page, "failure").catch(() => {});
  console.error(`${scenario} failed at ${b.page.url()}: ${e.stack ?? e}`);
  process.exitCode = e.exitCode ?? 1;
} finally {
  await b.close();
}
