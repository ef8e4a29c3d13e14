// Drives one SSO login in headless Chromium (Debian's, through playwright-core), as a person
// would: open the gateway's start URL, sign in at the provider's page, consent, and end at the
// app's loopback redirect URI.
//
//   node tests/oidc/browser-login.mjs START_URL LOGIN LOOPBACK_PREFIX
//
// Prints the final URL (the app's redirect with `code` and `state`) on stdout.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [startUrl, login, loopbackPrefix] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), 'gatehouse-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
try {
  const page = await context.newPage();
  // The provider's page imports a web font; nothing outside loopback is reachable here.
  await page.route(/^https?:\/\/(?!127\.0\.0\.1)/, (route) => route.abort());
  const reached = page.waitForURL((u) => u.toString().startsWith(loopbackPrefix), {
    timeout: 60_000,
    waitUntil: 'commit',
  });
  await page.goto(startUrl, { waitUntil: 'domcontentloaded' });
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', 'any password');
  await page.click('button[type=submit]');
  await page.waitForSelector('input[name=prompt][value=consent]', { state: 'attached' });
  await page.click('button[type=submit]');
  await reached;
  console.log(page.url());
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
