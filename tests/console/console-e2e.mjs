// Drives the web console in headless Chromium (Debian's, through playwright-core) as people
// would, against a real gateway, PostgreSQL and OpenID provider started by
// tests/tests/console_browser.rs. Two browser sessions at once:
//   root (administrator, signs in with SSO): environments and the tier filter → Approvals, where
//     a statement a psql session is waiting on appears live and is approved, and a second one is
//     denied (a reason is required) → an 8-hour grant for engineers, then taken back → alice added to
//     the group oncall → dry runs, before and after a new
//     rule → an audit search
//     and one connection's timeline → a service account created, rotated, revoked → alice's
//     session revoked → the masking screen → keyboard shortcuts;
//   alice (engineer, signs in with a password): no admin screens, no environment until root's
//     grant, then `dev`, and none again once it is removed; after root revokes her session the console says it expired.
// Screenshots of every step go to OUT_DIR. Progress lines on stdout (`STEP name`, `DRYRUN …`)
// let the Rust test start psql sessions at the right moments and check what the page showed.
//
//   node tests/console/console-e2e.mjs CONSOLE_URL OUT_DIR
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [base, outDir] = process.argv.slice(2);
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
async function newPage(who) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  page.on('pageerror', (e) => errors.push(`${who}: ${e}`));
  // The provider's pages import a web font; nothing outside loopback is reachable here.
  await page.route(/^https?:\/\/(?!127\.0\.0\.1)/, (route) => route.abort());
  pages.push([who, page]);
  return page;
}
const shot = (page, name) => page.screenshot({ path: join(outDir, `${name}.png`), fullPage: true });

try {
  const root = await newPage('root');
  const alice = await newPage('alice');
  const nav = (page, name) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true });

  // 1. root signs in with SSO through the real provider's login and consent pages.
  await root.goto(`${base}/`);
  await root.getByRole('button', { name: 'Sign in with SSO' }).waitFor();
  await root.getByLabel('Username').waitFor();
  await root.getByLabel('Password').waitFor();
  await shot(root, '01-login');
  await root.getByRole('button', { name: 'Sign in with SSO' }).click();
  await root.fill('input[name=login]', 'root');
  await root.fill('input[name=password]', 'any password');
  await root.click('button[type=submit]');
  await root.waitForSelector('input[name=prompt][value=consent]', { state: 'attached' });
  await root.click('button[type=submit]');
  await root.waitForURL((u) => u.toString().startsWith(base));
  say('STEP signed-in');

  // 2. Environments, and the tier filter.
  await root.locator('[data-env="prod"]').waitFor();
  await root.locator('[data-env="dev"]').waitFor();
  await root.getByTestId('identity').filter({ hasText: 'root@example.com' }).waitFor();
  await shot(root, '02-environments');
  await root.getByLabel('Tier').selectOption('production');
  await root.locator('[data-env="dev"]').waitFor({ state: 'detached' });
  await root.locator('[data-env="prod"]').waitFor();
  say('STEP environments');

  // 3. Approvals: open the screen, then the test starts psql; its held statement must appear
  //    without a reload.
  await nav(root, 'Approvals').click();
  await root.getByRole('heading', { name: 'Approvals' }).waitFor();
  await root.getByText('Live', { exact: true }).waitFor();
  say('STEP approvals-open');
  const card = root.locator('[data-approval]').filter({ hasText: 'DELETE FROM t' });
  await card.waitFor();
  await card.getByText('Estimated rows').waitFor();
  await card.locator('.badge-kind', { hasText: 'DELETE' }).waitFor();
  await card.getByText('prod-review-unbounded-write').waitFor();
  // The whole classification, not only the kinds: the table and the unbounded write.
  await card.getByText('unbounded write', { exact: true }).waitFor();
  await card.getByText('on t', { exact: true }).waitFor();
  say(`ESTIMATE ${(await card.locator('dt:text-is("Estimated rows") + dd').textContent()).trim()}`);
  await shot(root, '03-approval-pending');
  await card.getByLabel('Reason').fill('checked with the team: table t is scratch data');
  await card.getByRole('button', { name: 'Approve' }).click();
  await card.waitFor({ state: 'detached' });
  say('STEP approved');
  await root.getByRole('tab', { name: /Decided/ }).click();
  const decided = root.locator('[data-approval]').filter({ hasText: 'DELETE FROM t' });
  await decided.getByText('checked with the team').waitFor();
  // The held statement ran once approved: the approval is `used` (shown live, no reload).
  await decided.locator('.badge-used').waitFor();
  await shot(root, '04-approval-decided');

  // 4. A second held statement, denied: first without a reason (refused by the form).
  await root.getByRole('tab', { name: /Waiting/ }).click();
  say('STEP deny-ready');
  const second = root.locator('[data-approval]').filter({ hasText: 'UPDATE t SET v = 1' });
  await second.waitFor();
  // By keyboard: `j` selects the request, `d` denies it, which asks for a reason first.
  await root.locator('body').click({ position: { x: 5, y: 600 } });
  await root.keyboard.press('j');
  await root.waitForFunction(() => document.activeElement?.matches('[data-approval]'));
  await root.keyboard.press('d');
  await second.getByText('Give a reason to deny').waitFor();
  await shot(root, '09-deny-needs-a-reason');
  await second.getByLabel('Reason').fill('no bulk updates during the audit freeze');
  await second.getByRole('button', { name: 'Deny' }).click();
  await second.waitFor({ state: 'detached' });
  say('STEP denied');

  // 5. alice signs in with her password: no admin screens, and no environment yet.
  await alice.goto(`${base}/`);
  await alice.getByLabel('Username').fill('alice');
  await alice.getByLabel('Password').fill('alice-password');
  await alice.getByRole('button', { name: 'Sign in', exact: true }).click();
  await alice.getByTestId('identity').filter({ hasText: 'alice' }).waitFor();
  await alice.getByText('You may not reach any environment yet').waitFor();
  for (const name of ['Grants', 'Groups', 'Rules', 'Audit', 'Service accounts', 'Sessions', 'Masking']) {
    if ((await nav(alice, name).count()) !== 0) throw new Error(`alice sees the admin link ${name}`);
  }
  await shot(alice, '10-no-environment-yet');
  say('STEP alice-signed-in');

  // 6. Grants: root gives engineers the dev environment for 8 hours; alice sees it after a reload.
  await nav(root, 'Grants').click();
  await root.getByLabel('Groups').fill('engineers');
  await root.getByLabel('Environments').fill('dev');
  await root.getByLabel('Upstream role').fill('');
  // Just-in-time access: the grant lasts 8 hours, and the list says until when.
  await root.getByLabel('Expires').selectOption({ label: '8 hours' });
  await root.getByRole('button', { name: 'Add grant' }).click();
  await root.locator('tr[data-grant]').filter({ hasText: 'engineers' }).waitFor();
  const jit = await root.locator('tr[data-grant]').filter({ hasText: 'engineers' }).locator('td').nth(5).textContent();
  if (!/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/.test(jit ?? '')) throw new Error(`the 8-hour grant shows no expiry: ${jit}`);
  await shot(root, '05-grants');
  await alice.reload();
  await alice.locator('[data-env="dev"]').waitFor();
  if ((await alice.locator('[data-env="prod"]').count()) !== 0) throw new Error('alice sees prod');
  say('STEP grant-added');
  // Taking the grant back takes dev away from alice again.
  await root.getByRole('button', { name: 'Remove grant engineers → dev' }).click();
  await root.getByRole('alertdialog').getByRole('button', { name: 'Remove', exact: true }).click();
  await root.locator('tr[data-grant]').filter({ hasText: 'engineers' }).waitFor({ state: 'detached' });
  await alice.reload();
  await alice.getByText('You may not reach any environment yet').waitFor();
  say('STEP grant-removed');

  // 6b. Groups: root adds alice to `oncall`; the list shows her as an API member root added.
  await nav(root, 'Groups').click();
  await root.getByRole('heading', { name: 'Groups' }).waitFor();
  await root.locator('tr[data-group="admins"]').first().waitFor();
  await root.getByLabel('Group', { exact: true }).fill('oncall');
  await root.getByLabel('Member', { exact: true }).fill('alice');
  await root.getByRole('button', { name: 'Add member' }).click();
  const membership = root.locator('tr[data-group="oncall"][data-member="alice"]');
  await membership.getByRole('button', { name: 'Remove alice from oncall' }).waitFor();
  await membership.getByText('root@example.com', { exact: false }).waitFor();
  await shot(root, '16-groups');
  say('STEP group-member-added');

  // 7. Rules: dry-run a statement as the agent in production.
  await nav(root, 'Rules').click();
  await root.getByLabel('SQL', { exact: true }).fill('DROP TABLE t');
  await root.getByLabel('Identity').fill('agent');
  await root.getByLabel('Environment').selectOption('prod');
  await root.getByRole('button', { name: 'Check' }).click();
  const result = root.getByTestId('dry-run-result');
  await result.waitFor();
  const rule = (await root.getByTestId('dry-run-rule').textContent()).trim();
  const decision = (await result.locator('.badge').first().textContent()).trim();
  await shot(root, '06-rules-dry-run');
  say(`DRYRUN ${decision} ${rule}`);
  // A new rule, written as JSON, decides the next dry run.
  await root.getByRole('button', { name: 'New rule' }).click();
  await root.getByLabel('Rule (JSON)').fill(
    JSON.stringify({ id: 't-is-append-only', action: 'deny', kinds: ['delete'], tables: ['t'], description: 'rows of t are never deleted' }),
  );
  await root.getByRole('button', { name: 'Save rule' }).click();
  await root.locator('tr[data-rule="t-is-append-only"]').waitFor();
  await root.getByLabel('SQL', { exact: true }).fill('DELETE FROM t WHERE id = 1');
  await root.getByLabel('Environment').selectOption('dev');
  await root.getByRole('button', { name: 'Check' }).click();
  await root.getByTestId('dry-run-rule').filter({ hasText: 't-is-append-only' }).waitFor();
  const decision2 = (await result.locator('.badge').first().textContent()).trim();
  await shot(root, '15-rule-added');
  say(`DRYRUN2 ${decision2} t-is-append-only`);

  // 8. Audit: search for the approved statement, then its connection's timeline.
  await nav(root, 'Audit').click();
  await root.getByLabel('Search text').fill('DELETE FROM t');
  await root.getByRole('button', { name: 'Search' }).click();
  const row = root.locator('tr[data-audit]').filter({ hasText: 'DELETE FROM t' }).first();
  await row.waitFor();
  await shot(root, '07-audit-search');
  await row.getByRole('button', { name: 'Timeline' }).click();
  await root.getByRole('heading', { name: /Audit: connection/ }).waitFor();
  await root.locator('tr[data-audit]').first().filter({ hasText: 'connection.open' }).waitFor();
  const timeline = await root.locator('tr[data-audit]').count();
  await shot(root, '08-audit-timeline');
  say(`TIMELINE ${timeline}`);
  // Export the timeline as CSV: the browser downloads it with the session cookie.
  const [download] = await Promise.all([
    root.waitForEvent('download'),
    root.getByRole('button', { name: 'Export CSV' }).click(),
  ]);
  const csv = readFileSync(await download.path(), 'utf8');
  if (!csv.startsWith('id,ts,event') || !csv.includes('DELETE FROM t') || !csv.includes('connection.open')) {
    throw new Error(`unexpected export: ${csv.slice(0, 500)}`);
  }
  say(`EXPORT ${csv.trim().split('\n').length - 1}`);

  // 9. Service accounts: create (the token is shown once), rotate, revoke.
  await nav(root, 'Service accounts').click();
  await root.getByLabel('Name').fill('reporting-bot');
  await root.getByLabel('Groups').fill('agents');
  await root.getByLabel('On behalf of').fill('alice');
  await root.getByRole('button', { name: 'Create' }).click();
  const first = (await root.getByTestId('new-token').textContent()).trim();
  await root.locator('tr[data-service-account="reporting-bot"]').waitFor();
  await shot(root, '11-service-account-created');
  await root.getByRole('button', { name: 'Done' }).click();
  const confirm = (name) => root.getByRole('alertdialog').getByRole('button', { name, exact: true }).click();
  await root.getByRole('button', { name: 'Rotate reporting-bot' }).click();
  await confirm('Rotate');
  await root.getByTestId('new-token').waitFor();
  const second_token = (await root.getByTestId('new-token').textContent()).trim();
  if (!second_token || second_token === first) throw new Error('rotation showed no new token');
  await root.getByRole('button', { name: 'Done' }).click();
  await root.getByRole('button', { name: 'Revoke reporting-bot' }).click();
  await confirm('Revoke');
  await root.locator('tr[data-service-account="reporting-bot"]').getByText('revoked').waitFor();
  say(`TOKEN ${second_token}`);

  // 10. Sessions: revoke alice's; her console then says the session expired.
  await nav(root, 'Sessions').click();
  const aliceSession = root.locator('tr[data-session]').filter({ hasText: 'alice' });
  await aliceSession.waitFor();
  await shot(root, '12-sessions');
  await root.getByRole('button', { name: 'Revoke session of alice' }).click();
  await root.getByRole('alertdialog', { name: "Revoke alice's session?" }).waitFor();
  await shot(root, '12-sessions-confirm');
  await confirm('Revoke');
  await aliceSession.waitFor({ state: 'detached' });
  await nav(alice, 'Connections').click();
  await alice.getByText('Your session has expired').waitFor();
  await alice.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
  await shot(alice, '13-session-expired');
  say('STEP alice-revoked');

  // 11. Masking: prod's catalog (read when the agent first reached it) lists t's columns, none
  // sensitive; the admin marks t.v as a person's name, and the row says an administrator set it.
  await nav(root, 'Masking').click();
  await root.getByLabel('Environment').selectOption('prod');
  await root.getByLabel('Only sensitive columns').setChecked(false);
  const v = root.locator('tr[data-column="public.t.v"]');
  await v.waitFor();
  await root.getByLabel('Category for public.t.v').selectOption('person_name');
  await root.getByRole('button', { name: 'Override public.t.v' }).click();
  await v.getByText('set by an administrator').waitFor();
  await shot(root, '14-masking');
  say('STEP masking-overridden');

  // 12. Keyboard: `g a` goes to Approvals, `?` lists the shortcuts, Escape closes the list.
  await root.locator('body').click({ position: { x: 5, y: 300 } });
  await root.keyboard.press('g');
  await root.keyboard.press('a');
  await root.getByRole('heading', { name: 'Approvals' }).waitFor();
  await root.keyboard.press('?');
  const help = root.getByRole('dialog', { name: 'Keyboard shortcuts' });
  await help.waitFor();
  // Focus moves into the dialog; Escape closes it.
  await root.waitForFunction(() => document.activeElement?.closest('[role=dialog]') !== null);
  await root.keyboard.press('Escape');
  await root.getByRole('dialog').waitFor({ state: 'detached' });

  if (errors.length) throw new Error(`errors on the page: ${errors.join('; ')}`);
  say('STEP done');
} catch (e) {
  for (const [who, page] of pages) await shot(page, `failure-${who}`).catch(() => {});
  console.error(e);
  process.exitCode = 1;
} finally {
  await browser.close();
}
