// Browser scenarios for the portal, run by webportal/e2e_test.go:
//   node e2e/portal.e2e.mjs SCENARIO
// with PORTAL_E2E (the test world as JSON: URL, Project, Alice/Admin keypairs,
// CPULimit), PORTAL_ARTIFACTS (where screenshots go) and CHROMIUM set.
// Playwright drives Debian's Chromium headless; nothing is downloaded.
import { chromium } from "playwright-core";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
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
    // Refusals the scenarios provoke, and the connection the resume scenario breaks on purpose.
    if (m.type() === "error" && !/status of (401|403|404)|ERR_CONNECTION_RESET/.test(m.text())) problems.push(`console: ${m.text()}`);
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

const sha256 = (b) => createHash("sha256").update(b).digest("hex");

// watchProgress records every value the page's upload progress bars take,
// to show that progress was drawn between nothing and everything.
async function watchProgress(page) {
  await page.evaluate(() => {
    window.__progress = [];
    new MutationObserver((ms) => {
      for (const m of ms) if (m.target instanceof HTMLProgressElement) window.__progress.push([m.target.value, m.target.max]);
    }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ["value"] });
  });
}

// downloaded clicks something that downloads and returns the file's bytes and name.
async function downloaded(page, click) {
  const [dl] = await Promise.all([page.waitForEvent("download"), click()]);
  const failure = await dl.failure();
  if (failure) throw new Error(`download of ${dl.suggestedFilename()} failed: ${failure}`);
  return { name: dl.suggestedFilename(), bytes: readFileSync(await dl.path()) };
}

// dropFiles drops files on an element the way a desktop drag-and-drop does.
async function dropFiles(page, selector, files) {
  const dt = await page.evaluateHandle((fs) => {
    const dt = new DataTransfer();
    for (const f of fs) dt.items.add(new File([new Uint8Array(f.bytes)], f.name, { type: "application/octet-stream" }));
    return dt;
  }, files.map((f) => ({ name: f.name, bytes: [...f.bytes] })));
  for (const type of ["dragenter", "dragover", "drop"]) await page.dispatchEvent(selector, type, { dataTransfer: dt });
}

// openFolder goes to the folder list and into one folder.
async function openFolder(page, name) {
  await page.getByRole("link", { name: "Folders", exact: true }).click();
  await page.getByRole("heading", { name: "Folders", exact: true }).waitFor();
  await page.locator(`tr[data-vfolder="${name}"] a`).click();
  await page.getByRole("heading", { name: `Folder ${name}` }).waitFor();
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

  // The form bounds CPUs by what the quotas leave and says which limit; a
  // form older than the gateway's figures is still refused by the gateway,
  // naming the limit.
  async "over-quota"({ page }) {
    // Through the OpenID Provider, straight back to the page asked for.
    await signInOIDC(page, "alice", world.AliceOIDCPassword, "/launch");
    await page.getByRole("heading", { name: "Launch a session" }).waitFor();
    await page.getByLabel("Project").selectOption(world.Project);
    const cpus = page.getByLabel("CPUs");
    // alice holds nothing (the batch session ended), so the bound is the smaller policy.
    const max = Math.min(world.CPULimit, world.ProjectCPULimit);
    expect((await cpus.getAttribute("max")) === String(max), `the CPUs field's max to be ${max}, got ${await cpus.getAttribute("max")}`);
    const hintId = await cpus.getAttribute("aria-describedby");
    const hint = await page.locator(`[id="${hintId}"]`).textContent();
    log("CPUs hint:", hint);
    expect(hint.startsWith(`Up to ${max}`) && hint.includes(`project ${world.Project} has ${world.ProjectCPULimit} of ${world.ProjectCPULimit} left`),
      `the CPUs hint to name the project's limit, got ${JSON.stringify(hint)}`);
    expect(await page.getByRole("button", { name: "Launch", exact: true }).isEnabled(), "Launch to be enabled with quota left");
    await shot(page, "limits");
    await cpus.fill(String(world.CPULimit + 2));
    expect(await cpus.evaluate((el) => el.validity.rangeOverflow), "the browser to refuse more CPUs than the form's max");
    // As a form loaded before another session took the quota would be.
    await cpus.evaluate((el) => el.removeAttribute("max"));
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

  // An interactive session (runtime none: the job runs `slurmgate agent` as
  // alice, which dials the gateway's tunnel): open the terminal, run a
  // command, see its output; then sign out in another tab and see the open
  // terminal close.
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
    const id = page.url().split("/").pop();
    log("session", id);
    // RUNNING means the job's `slurmgate agent` dialled the gateway and said
    // it is ready; the badge gets there over SSE, without a reload.
    await page.locator('h1 .badge[data-state="RUNNING"]').waitFor({ timeout: 120_000 });
    await shot(page, "running");
    await page.getByRole("button", { name: "Open terminal" }).click();
    await page.locator(".terminal .xterm").waitFor();
    // Type once the shell has printed its prompt, as a person would: the
    // PTY is the agent's, and what reaches it before bash reads is
    // the shell's business, not the portal's.
    await page.locator(".terminal .xterm-rows", { hasText: /\S/ }).waitFor({ timeout: 20_000 });
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
    // The page says so, in the terminal and on its button.
    await page.locator(".terminal .xterm-rows", { hasText: "[terminal " }).waitFor();
    await page.getByRole("button", { name: "Reopen terminal" }).waitFor();
    // Closed by the gateway, not by this page ("closed") nor by the shell.
    const reason = await page.locator(".terminal-slot").getAttribute("data-closed");
    log("closed:", reason);
    expect(reason !== "closed" && !reason.startsWith("the shell exited"), `the gateway to end the terminal, the page says ${JSON.stringify(reason)}`);
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
    for (const section of ["Images", "Policies"]) {
      await page.getByRole("link", { name: section, exact: true }).click();
      await page.getByRole("heading", { name: new RegExp(`^Admin: ${section}`) }).waitFor();
      await page.locator(".card").first().waitFor();
      await shot(page, section.toLowerCase());
    }
    // The cluster: every partition and node with its CPUs in use as a bar.
    await page.getByRole("link", { name: "Cluster", exact: true }).click();
    await page.getByRole("heading", { name: "Admin: Cluster" }).waitFor();
    await page.locator('tr[data-partition="cpu"] meter').first().waitFor();
    const nodes = await page.locator("tr[data-node]").count();
    expect(nodes >= 1, `nodes listed, got ${nodes}`);
    expect((await page.locator("tr[data-node] meter").count()) >= 2 * nodes, "CPU and memory bars for every node");
    await shot(page, "cluster");
    // The sync plan shows the new project and bob's membership as drift;
    // applying it makes them in Slurm (the Go test reads them back).
    await page.getByRole("link", { name: "Slurm sync", exact: true }).click();
    await page.getByRole("heading", { name: "Admin: Slurm sync" }).waitFor();
    const account = `${world.Domain}.robotics`;
    await page.locator(`tr[data-change="create account"][data-account="${account}"]`).waitFor();
    await page.locator(`tr[data-change="create association"][data-account="${account}"][data-user="bob"]`).waitFor();
    await shot(page, "sync-plan");
    page.once("dialog", (d) => d.accept()); // only asked when the plan deletes something
    await page.getByRole("button", { name: "Apply plan" }).click();
    const applied = page.locator("[data-applied]");
    await applied.waitFor({ timeout: 60_000 });
    log("sync:", await applied.textContent());
    await page.locator(`details.applied tr[data-change="create association"][data-account="${account}"][data-user="bob"]`).waitFor();
    expect(Number(await applied.getAttribute("data-applied")) >= 2, "at least the account and the association applied");
    if (await page.locator("[data-failed]").count()) throw new Error(`expected no failed changes, got: ${await page.locator("[data-failed]").textContent()}`);
    // Read again after applying, the plan is empty: Slurm matches the database.
    await page.getByText("No drift").waitFor({ timeout: 30_000 });
    await shot(page, "sync-applied");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(/\/login\?signed_out=1/);
    await page.getByText("You are signed out.").waitFor();
    // Signed out means signed out: a portal page sends us back to the login.
    await page.goto(world.URL + "/admin");
    await page.waitForURL(/\/login/);
    await shot(page, "signed-out");
  },

  // Alice's folders: create one, make a directory, upload by drag and drop
  // and by choosing files (with progress), download and compare the bytes,
  // download the folder as a zip, rename and delete, invite bob; then an
  // upload broken off mid-way resumes after a reload without starting over.
  async vfolders({ page }) {
    await signInLDAP(page, "alice", world.AliceLDAPPassword);
    await page.getByRole("link", { name: "Folders", exact: true }).click();
    await page.getByRole("heading", { name: "Folders", exact: true }).waitFor();
    await page.getByLabel("Name").fill("data");
    await page.getByLabel("Quota (MiB)").fill("200");
    await page.getByRole("button", { name: "Create folder" }).click();
    await page.locator('tr[data-vfolder="data"] meter').waitFor();
    await shot(page, "list");
    await openFolder(page, "data");

    await page.getByLabel("New directory").fill("results");
    await page.getByRole("button", { name: "Create directory" }).click();
    await page.locator('tr[data-file="results"][data-type="dir"]').waitFor();

    // Drag and drop a small file.
    const notes = Buffer.from("notes from the browser test\n");
    await dropFiles(page, "[data-dropzone]", [{ name: "notes.txt", bytes: notes }]);
    await page.locator('li[data-upload="notes.txt"][data-state="done"]').waitFor();
    await page.locator('tr[data-file="notes.txt"]').waitFor();

    // Choose a file bigger than one chunk: progress is drawn between 0 and 100 %.
    const big = randomBytes(20 << 20);
    await watchProgress(page);
    await page.locator("#upload-files").setInputFiles({ name: "big.bin", mimeType: "application/octet-stream", buffer: big });
    await page.locator('li[data-upload="big.bin"][data-state="done"]').waitFor({ timeout: 60_000 });
    const seen = await page.evaluate(() => window.__progress);
    expect(seen.some(([v, max]) => v > 0 && v < max), `progress between 0 and 100 %, saw ${JSON.stringify(seen.slice(0, 10))}`);
    log(`big.bin: ${seen.length} progress updates`);
    await page.locator('tr[data-file="big.bin"]').waitFor();
    await shot(page, "uploaded");

    const got = await downloaded(page, () => page.getByRole("button", { name: "Download big.bin", exact: true }).click());
    expect(got.name === "big.bin" && sha256(got.bytes) === sha256(big), `the downloaded big.bin to match the upload (${got.bytes.length} bytes)`);
    const zip = await downloaded(page, () => page.getByRole("button", { name: "Download folder as zip" }).click());
    expect(zip.name.endsWith(".zip") && zip.bytes.subarray(0, 2).toString() === "PK", `a zip of the folder, got ${zip.name} starting ${zip.bytes.subarray(0, 4).toString("hex")}`);
    expect(zip.bytes.includes(Buffer.from("notes.txt")) && zip.bytes.includes(Buffer.from("results/")), "notes.txt and results/ in the zip");

    // Rename, then delete with confirmation.
    await page.getByRole("button", { name: "Rename notes.txt" }).click();
    await page.getByLabel("New name for notes.txt").fill("readme.txt");
    await page.getByLabel("New name for notes.txt").press("Enter");
    await page.locator('tr[data-file="readme.txt"]').waitFor();
    page.once("dialog", (d) => d.accept());
    await page.getByRole("button", { name: "Delete readme.txt" }).click();
    await page.locator('tr[data-file="readme.txt"]').waitFor({ state: "detached" });

    // Share with bob: an invitation until he accepts.
    await page.getByLabel("User", { exact: true }).fill("bob");
    await page.getByLabel("Permission").selectOption("ro");
    await page.getByRole("button", { name: "Invite" }).click();
    await page.locator('li[data-share="bob"][data-state="pending"]').waitFor();
    await shot(page, "shared");

    // Resume: the connection breaks after the first chunk (every later
    // PATCH fails), the page gives up and is reloaded; choosing the same
    // file again continues from what the gateway has.
    const dir = mkdtempSync(join(tmpdir(), "portal-upload-"));
    const file = join(dir, "resume.bin");
    const body = randomBytes(20 << 20);
    writeFileSync(file, body);
    utimesSync(file, new Date("2024-05-01T10:00:00Z"), new Date("2024-05-01T10:00:00Z"));
    let patches = 0;
    await page.route("**/api/v1/uploads/**", (route) => (route.request().method() === "PATCH" && patches++ >= 1 ? route.abort("connectionreset") : route.continue()));
    await page.locator("#upload-files").setInputFiles(file);
    await page.locator('li[data-upload="resume.bin"][data-state="failed"]').waitFor({ timeout: 60_000 });
    await page.getByRole("button", { name: "Resume upload of resume.bin" }).waitFor();
    await shot(page, "upload-broken");
    await page.unrouteAll();
    await page.reload();
    await page.locator('[data-unfinished="resume.bin"]').waitFor();
    await shot(page, "upload-unfinished");
    await page.locator("#upload-files").setInputFiles(file);
    const done = page.locator('li[data-upload="resume.bin"][data-state="done"]');
    await done.waitFor({ timeout: 60_000 });
    const from = Number(await done.getAttribute("data-resumed-from"));
    expect(from >= 8 << 20, `the upload to resume at the first chunk's end or later, resumed at ${from}`);
    log(`resume.bin resumed at ${from} bytes after a reload`);
    await page.locator('[data-unfinished="resume.bin"]').waitFor({ state: "detached" });
    const again = await downloaded(page, () => page.getByRole("button", { name: "Download resume.bin", exact: true }).click());
    expect(sha256(again.bytes) === sha256(body), "the resumed file's bytes to match");
    rmSync(dir, { recursive: true, force: true });
    await shot(page, "resumed");
  },

  // Bob accepts alice's invitation (from the vfolders scenario) and can
  // read the folder but not write to it.
  async invitation({ page }) {
    await signInKeypair(page, world.BobKey);
    await page.getByRole("link", { name: "Folders", exact: true }).click();
    const inv = page.locator('li[data-invitation="data"]');
    await inv.waitFor();
    expect((await inv.textContent()).includes("alice invites you"), "the invitation to name alice");
    await shot(page, "pending");
    await page.getByRole("button", { name: "Accept data" }).click();
    await inv.waitFor({ state: "detached" });
    const row = page.locator('tr[data-vfolder="data"]');
    await row.waitFor();
    expect((await row.textContent()).includes("read only"), "bob's access to be read only");
    await row.locator("a").click();
    await page.locator('tr[data-file="big.bin"]').waitFor();
    await page.getByText("You may read this folder but not write to it.").waitFor();
    expect((await page.locator("[data-dropzone]").count()) === 0, "no upload area on a read-only folder");
    await shot(page, "accepted");
  },

  // An upload bigger than the folder's quota is refused before any byte is
  // sent, and the refusal names the limit.
  async "vfolder-quota"({ page }) {
    await signInLDAP(page, "alice", world.AliceLDAPPassword);
    await page.getByRole("link", { name: "Folders", exact: true }).click();
    await page.getByLabel("Name").fill("tiny");
    await page.getByLabel("Quota (MiB)").fill("1");
    await page.getByRole("button", { name: "Create folder" }).click();
    await page.locator('tr[data-vfolder="tiny"]').waitFor();
    await openFolder(page, "tiny");
    await page.locator("#upload-files").setInputFiles({ name: "too-big.bin", mimeType: "application/octet-stream", buffer: randomBytes(2 << 20) });
    const alert = page.locator('li[data-upload="too-big.bin"][data-state="failed"] [role="alert"][data-limit="vfolder_quota_bytes"]');
    await alert.waitFor();
    const text = await alert.textContent();
    log("refusal:", text);
    expect(text.includes("at most 1 MiB") && text.includes("2 MiB asked"), `the refusal to name the 1 MiB quota, got ${JSON.stringify(text)}`);
    expect(await page.getByRole("button", { name: "Resume upload of too-big.bin" }).isHidden(), "no Resume for a refusal");
    expect((await page.locator('tr[data-file="too-big.bin"]').count()) === 0, "nothing written");
    await shot(page, "refused");
  },

  // Signing out: a logout the gateway refused is not reported as done,
  // remembered uploads (capability URLs) are forgotten, and the login page
  // shows no text from its URL nor treats the keypair secret as a password.
  async signout({ page, problems }) {
    await signInLDAP(page, "alice", world.AliceLDAPPassword);
    // A logout the gateway did not carry out is not reported as done: the
    // login is still valid there.
    await page.route("**/api/v1/auth/logout", (route) =>
      route.fulfill({ status: 503, contentType: "application/problem+json", body: JSON.stringify({ title: "Unavailable", status: 503, detail: "the database is not answering" }) }),
    );
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.locator("#signout-error").getByText("you are still signed in").waitFor();
    expect(!page.url().includes("/login"), "to stay on the page after a failed sign-out");
    await page.unrouteAll();
    // The refusal provoked above is not a fault of the page.
    problems.splice(0, problems.length, ...problems.filter((p) => !p.includes("status of 503")));
    // Upload capability URLs do not outlive the sign-in.
    await page.evaluate(() => localStorage.setItem("slurmgate.upload:x:/a:1:1", JSON.stringify({ url: "/api/v1/uploads/none" })));
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(/\/login\?signed_out=1/);
    await page.getByText("You are signed out.").waitFor();
    const left = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("slurmgate.upload:")));
    expect(left.length === 0, `no remembered upload after signing out, found ${left}`);
    // The login page shows no text from its URL, and the keypair secret is not a password to save.
    await page.goto(world.URL + "/login?error=" + encodeURIComponent("Your account is locked: call 555-0100"));
    await page.locator('input[name="secret_key"]').waitFor({ state: "attached" });
    expect((await page.getByText("call 555-0100").count()) === 0, "the login page not to show ?error= text");
    expect((await page.locator('input[name="secret_key"]').getAttribute("autocomplete")) === "off", "autocomplete=off on the secret key");
    await shot(page, "login-after-signout");
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
    const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect((await overflow()) <= 1, `no sideways scrolling on a phone, the session page is ${await overflow()}px too wide`);
    await page.goto(world.URL + "/vfolders");
    await page.locator('tr[data-vfolder="data"]').waitFor();
    await shot(page, "folders");
    expect((await overflow()) <= 1, `no sideways scrolling on a phone, the folder list is ${await overflow()}px too wide`);
    await page.locator('tr[data-vfolder="data"] a').click();
    await page.locator('tr[data-file="big.bin"]').waitFor();
    await shot(page, "folder");
    expect((await overflow()) <= 1, `no sideways scrolling on a phone, the folder page is ${await overflow()}px too wide`);
  },

  // slurmgate login --browser on a phone: the Go test started two device
  // logins; alice, not yet signed in, opens the first's link, signs in and
  // is brought back to it, checks the (hostile) description shown as text
  // and allows it; then types the second's code in lower case without the
  // dash and denies it. The Go test polls for the results.
  async device({ page }) {
    const d = world.Device;
    const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await page.goto(d.AllowURL);
    await page.waitForURL(/\/login\?next=/);
    await page.getByLabel("Username").fill("alice");
    await page.getByLabel("Password", { exact: true }).fill(world.AliceLDAPPassword);
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await page.getByRole("heading", { name: "Approve a device login" }).waitFor();
    const code = new URL(d.AllowURL).searchParams.get("code");
    expect(new URL(page.url()).pathname === "/device" && new URL(page.url()).searchParams.get("code") === code, `back on the device page after signing in, at ${page.url()}`);
    expect((await page.locator("[data-user-code]").textContent()) === code, `the code ${code} shown`);
    expect((await page.locator("[data-client]").textContent()) === d.Client, "the client's description shown verbatim, as text");
    expect((await page.locator("main img").count()) === 0 && !(await page.evaluate(() => window.__pwned)), "no markup from the description in the page");
    expect((await overflow()) <= 1, `no sideways scrolling on a phone, the device page is ${await overflow()}px too wide`);
    await shot(page, "approve");
    await page.getByRole("button", { name: "Allow" }).click();
    await page.getByText("You can return to your terminal").waitFor();
    await page.locator('[data-result="allowed"]').waitFor();
    await shot(page, "allowed");

    await page.goto(world.URL + "/device");
    await page.getByLabel("Code", { exact: true }).fill(d.DenyCode.replace("-", "").toLowerCase());
    await page.getByRole("button", { name: "Continue" }).click();
    await page.locator("[data-user-code]").waitFor();
    expect((await page.locator("[data-user-code]").textContent()) === d.DenyCode, `the typed code read as ${d.DenyCode}`);
    await page.getByRole("button", { name: "Deny" }).click();
    await page.locator('[data-result="denied"]').waitFor();
    await shot(page, "denied");

    // A code already decided is no longer waiting.
    await page.goto(d.AllowURL);
    await page.getByText("No login is waiting for code").waitFor();
  },
};

const run = scenarios[scenario];
if (!run) {
  console.error(`unknown scenario ${scenario}; known: ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
const b = await browser(scenario === "phone" || scenario === "device" ? { width: 390, height: 844 } : undefined);
try {
  await run(b);
  if (b.problems.length) throw new Error(`the page reported errors:\n  ${b.problems.join("\n  ")}`);
  log("ok");
} catch (e) {
  await shot(b.page, "failure").catch(() => {});
  console.error(`${scenario} failed at ${b.page.url()}: ${e.stack ?? e}`);
  process.exitCode = 1;
} finally {
  await b.close();
}
