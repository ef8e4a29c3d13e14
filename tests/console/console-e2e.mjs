// Drives the web console in headless Chromium (Debian's, through playwright-core) as a person
// would, against a real gateway, PostgreSQL and OpenID provider started by
// tests/tests/console_browser.rs:
//   sign in with SSO → environments (tier filter) → Approvals, where a statement that a psql
//   session is waiting on appears live and is approved → a grant added → a dry run of a rule →
//   an audit search and one connection's timeline.
// Screenshots of every step go to OUT_DIR. Progress lines on stdout (`STEP name`, `DRYRUN …`)
// let the Rust test start psql at the right moment and check what the page showed.
//
//   node tests/console/console-e2e.mjs CONSOLE_URL OUT_DIR
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [base, outDir] = process.argv.slice(2);
mkdirSync(outDir, { recursive: true });
const say = (line) => console.log(line);

const profile = mkdtempSync(join(tmpdir(), 'gatehouse-console-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1280, height: 860 },
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
const errors = [];
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(30_000);
  page.on('pageerror', (e) => errors.push(String(e)));
  // The provider's pages import a web font; nothing outside loopback is reachable here.
  await page.route(/^https?:\/\/(?!127\.0\.0\.1)/, (route) => route.abort());
  const shot = (name) => page.screenshot({ path: join(outDir, `${name}.png`), fullPage: true });
  globalThis.failShot = () => shot('failure').catch(() => {});

  // 1. Sign in with SSO through the real provider's login and consent pages.
  await page.goto(`${base}/`);
  await page.getByRole('button', { name: 'Sign in with SSO' }).waitFor();
  await page.getByLabel('Username').waitFor();
  await page.getByLabel('Password').waitFor();
  await shot('01-login');
  await page.getByRole('button', { name: 'Sign in with SSO' }).click();
  await page.fill('input[name=login]', 'root');
  await page.fill('input[name=password]', 'any password');
  await page.click('button[type=submit]');
  await page.waitForSelector('input[name=prompt][value=consent]', { state: 'attached' });
  await page.click('button[type=submit]');
  await page.waitForURL((u) => u.toString().startsWith(base));
  say('STEP signed-in');

  // 2. Environments, and the tier filter.
  await page.locator('[data-env="prod"]').waitFor();
  await page.locator('[data-env="dev"]').waitFor();
  await page.getByTestId('identity').filter({ hasText: 'root@example.com' }).waitFor();
  await shot('02-environments');
  await page.getByLabel('Tier').selectOption('production');
  await page.locator('[data-env="dev"]').waitFor({ state: 'detached' });
  await page.locator('[data-env="prod"]').waitFor();
  say('STEP environments');

  // 3. Approvals: open the screen, then let the test start psql; its held statement must
  //    appear without a reload.
  await page.getByRole('link', { name: 'Approvals' }).click();
  await page.getByRole('heading', { name: 'Approvals' }).waitFor();
  await page.getByText('Live', { exact: true }).waitFor();
  say('STEP approvals-open');
  const card = page.locator('[data-approval]').filter({ hasText: 'DELETE FROM t' });
  await card.waitFor();
  await card.getByText('Estimated rows').waitFor();
  await card.locator('.badge-kind', { hasText: 'DELETE' }).waitFor();
  await card.getByText('prod-review-unbounded-write').waitFor();
  await shot('03-approval-pending');
  await card.getByLabel('Reason').fill('checked with the team: table t is scratch data');
  await card.getByRole('button', { name: 'Approve' }).click();
  await card.waitFor({ state: 'detached' });
  say('STEP approved');
  await page.getByRole('tab', { name: /Decided/ }).click();
  const decided = page.locator('[data-approval]').filter({ hasText: 'DELETE FROM t' });
  await decided.getByText('checked with the team').waitFor();
  // The held statement ran once approved: the approval is `used` (shown live, no reload).
  await decided.locator('.badge-used').waitFor();
  await shot('04-approval-decided');

  // 4. Grants: give engineers the dev environment.
  await page.getByRole('link', { name: 'Grants' }).click();
  await page.getByLabel('Groups').fill('engineers');
  await page.getByLabel('Environments').fill('dev');
  await page.getByLabel('Upstream role').fill('');
  await page.getByRole('button', { name: 'Add grant' }).click();
  await page.locator('tr[data-grant]').filter({ hasText: 'engineers' }).waitFor();
  await shot('05-grants');
  say('STEP grant-added');

  // 5. Rules: dry-run a statement as the agent in production.
  await page.getByRole('link', { name: 'Rules' }).click();
  await page.getByLabel('SQL').fill('DROP TABLE t');
  await page.getByLabel('Identity').fill('agent');
  await page.getByLabel('Environment').selectOption('prod');
  await page.getByRole('button', { name: 'Check' }).click();
  const result = page.getByTestId('dry-run-result');
  await result.waitFor();
  const rule = (await page.getByTestId('dry-run-rule').textContent()).trim();
  const decision = (await result.locator('.badge').first().textContent()).trim();
  await shot('06-rules-dry-run');
  say(`DRYRUN ${decision} ${rule}`);

  // 6. Audit: search for the approved statement, then its connection's timeline.
  await page.getByRole('link', { name: 'Audit' }).click();
  await page.getByLabel('Search text').fill('DELETE FROM t');
  await page.getByRole('button', { name: 'Search' }).click();
  const row = page.locator('tr[data-audit]').filter({ hasText: 'DELETE FROM t' }).first();
  await row.waitFor();
  await shot('07-audit-search');
  await row.getByRole('button', { name: 'Timeline' }).click();
  await page.getByRole('heading', { name: /Audit: connection/ }).waitFor();
  await page.locator('tr[data-audit]').first().filter({ hasText: 'connection.open' }).waitFor();
  const timeline = await page.locator('tr[data-audit]').count();
  await shot('08-audit-timeline');
  say(`TIMELINE ${timeline}`);

  if (errors.length) throw new Error(`errors on the page: ${errors.join('; ')}`);
  say('STEP done');
} catch (e) {
  await globalThis.failShot?.();
  console.error(e);
  process.exitCode = 1;
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
