// Access on request in the web console, in headless Chromium (Debian's, through
// playwright-core), against a real gateway started by tests/tests/access_requests.rs. Three
// browser sessions, each signed in with a password:
//   ana (engineer, no grant): Environments lists prod under "Request access"; she asks for it
//     for an hour with a reason, and the card says it waits for an approver;
//   root (approver): the request appears live in the approvals inbox, worded as what is asked;
//     he approves it with a note, and ana's console then lists prod among her environments;
//   olga (on call): breaks glass on prod herself, and root's console shows the banner;
//   root then replays CONNECTION (an agent's session the test ran) step by step from the audit.
// Screenshots of every step go to OUT_DIR. Progress lines on stdout (`STEP name`, `REQUEST id`)
// tell the Rust test what happened, which then checks the effect at the gateway.
//
//   node tests/console/access-e2e.mjs CONSOLE_URL OUT_DIR CONNECTION
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [base, outDir, connection] = process.argv.slice(2);
mkdirSync(outDir, { recursive: true });
const say = (line) => console.log(line);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
const errors = [];
const pages = [];
async function signedIn(who, password) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  page.on('pageerror', (e) => errors.push(`${who}: ${e}`));
  pages.push([who, page]);
  await page.goto(`${base}/`);
  await page.getByLabel('Username').fill(who);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByTestId('identity').filter({ hasText: who }).waitFor();
  return page;
}
const shot = (page, name) => page.screenshot({ path: join(outDir, `${name}.png`), fullPage: true });
const nav = (page, name) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true });

try {
  const root = await signedIn('root', 'root-pw');
  await nav(root, 'Approvals').click();
  await root.getByText('Live', { exact: true }).waitFor();

  // 1. ana asks for prod for an hour.
  const ana = await signedIn('ana', 'ana-pw');
  await ana.getByText('You may not reach any environment yet').waitFor();
  const prod = ana.locator('[data-requestable="prod"]');
  await prod.waitFor();
  await prod.getByRole('button', { name: 'Request access' }).click();
  await prod.getByLabel('For how long').selectOption({ label: '1h' });
  await prod.getByLabel('Reason').fill('ticket 4312: orders stuck in checkout');
  await shot(ana, 'access-01-request-form');
  await prod.getByRole('button', { name: 'Send request' }).click();
  await prod.getByText('waiting for an approver').waitFor();
  const id = await prod.locator('[data-pending]').getAttribute('data-pending');
  say(`REQUEST ${id}`);
  await shot(ana, 'access-02-requested');

  // 2. root sees it live in the inbox, and approves it with a note.
  const card = root.locator(`[data-approval="${id}"]`);
  await card.waitFor();
  await card.getByText('Access to prod for 1h').waitFor();
  await card.getByText('ticket 4312: orders stuck in checkout').waitFor();
  await shot(root, 'access-03-inbox');
  await card.getByLabel('Reason').fill('ok for the incident window');
  await card.getByRole('button', { name: 'Approve' }).click();
  await card.waitFor({ state: 'detached' });
  say('STEP approved');

  // 3. ana's console now lists prod among her environments (after the decision, no sign-in again).
  await ana.locator('[data-env="prod"]').waitFor({ timeout: 20_000 });
  await shot(ana, 'access-04-granted');
  say('STEP ana-sees-prod');

  // 4. olga breaks glass; root's console shows the banner.
  const olga = await signedIn('olga', 'olga-pw');
  const glass = olga.locator('[data-requestable="prod"]');
  await glass.getByRole('button', { name: 'Request access' }).click();
  await glass.getByLabel('Reason').fill('incident 77: checkout down');
  await glass.getByLabel(/Break-glass/).check();
  await glass.getByRole('button', { name: 'Break glass' }).click();
  await olga.getByText(/Break-glass access to prod until/).waitFor();
  const banner = root.getByRole('alert', { name: 'Break-glass access in use' });
  await banner.waitFor({ timeout: 20_000 });
  await banner.getByText('incident 77: checkout down').waitFor();
  await shot(root, 'access-05-break-glass-banner');
  say('STEP break-glass');

  // 5. root replays the agent's session: open, then its statements one by one, the failing one last.
  await root.goto(`${base}/#/audit?connection=${encodeURIComponent(connection)}`);
  const replay = root.getByRole('region', { name: 'Session replay' });
  await replay.waitFor();
  await replay.getByText('Step 1 of', { exact: false }).waitFor();
  const next = replay.getByRole('button', { name: 'Next' });
  for (let i = 0; i < 3; i++) await next.click();
  await replay.getByText('division by zero', { exact: false }).waitFor();
  await shot(root, 'access-06-replay');
  const position = (await replay.getByTestId('replay-position').textContent()).trim();
  const step = (await replay.getByTestId('replay-step').textContent()).replace(/\s+/g, ' ');
  say(`REPLAY ${position} | ${step}`);

  if (errors.length) throw new Error(`errors on the page: ${errors.join('; ')}`);
  say('STEP done');
} catch (e) {
  for (const [who, page] of pages) await shot(page, `failure-${who}`).catch(() => {});
  console.error(e);
  process.exitCode = 1;
} finally {
  await browser.close();
}
