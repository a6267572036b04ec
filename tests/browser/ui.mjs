// Browser test of Tidings' web interface, in Debian's chromium driven by playwright-core.
// Run by crates/server/tests/browser.rs, which starts Tidings, the SMTP server and the OAuth server and passes:
// TIDINGS_URL, TIDINGS_USER, TIDINGS_PASSWORD, FAILED_MESSAGE (an outbox id that failed with an explained
// reply), SCREENSHOTS (a directory). Exits non-zero on the first failed step, saying which.
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const require = createRequire(new URL('../peers/node/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const base = process.env.TIDINGS_URL;
const shots = process.env.SCREENSHOTS;
mkdirSync(shots, { recursive: true });

function check(condition, what) {
  if (!condition) throw new Error(`FAILED: ${what}`);
  console.log(`ok - ${what}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  // Playwright gives every launch a fresh profile of its own.
  headless: true,
});
const context = await browser.newContext({ locale: 'en-GB', viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(15000);
const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

try {
  // Sign in: the protected page sends the browser to the sign-in form and back.
  await page.goto(`${base}/email-config`);
  check(page.url().includes('/login'), 'an unauthenticated visit lands on the sign-in page');
  await page.fill('input[name=username]', process.env.TIDINGS_USER);
  await page.fill('input[name=password]', 'not-the-password');
  await page.click('button[type=submit]');
  check(await page.locator('.notice.error').isVisible(), 'a wrong password is refused with a message');
  await page.fill('input[name=password]', process.env.TIDINGS_PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForURL(`${base}/email-config`);
  check(await page.locator('h1').innerText() === 'Email configuration', 'signed in, on Management > Email Configuration');
  await shot('email-config');

  // Validation as you type: the error appears beside the field without saving.
  await page.fill('input[name="smtp.port"]', '99999');
  await page.locator('[data-error-for="smtp.port"]').filter({ hasText: /65535|port/ }).waitFor();
  check(true, 'a bad port is explained beside its field while typing');
  // And on Save: nothing saved, every error beside its field.
  await page.fill('input[name="sender"]', 'not an address');
  await page.click('form#config button[type=submit]');
  await page.locator('.field.invalid[data-key="sender"] small.error').waitFor();
  check((await page.locator('.field.invalid[data-key="sender"] small.error').innerText()).length > 0, 'Save refuses a bad sender, explained beside the field');
  check(await page.locator('#error-summary').isVisible(), 'the page says nothing was saved');
  check(await page.locator('#error-summary a[href="#sender"]').isVisible(), 'the summary links to the field at fault');
  check(await page.evaluate(() => document.activeElement?.id === 'error-summary'), 'the summary takes the focus');
  check(await page.locator('input[name="sender"]').getAttribute('aria-invalid') === 'true', 'the field is marked invalid for assistive technology');
  await shot('email-config-errors');
  // An error in a collapsed section: the section opens, the field is seen.
  await page.fill('input[name="sender"]', 'alerts@example.com');
  await page.locator('#section-advanced summary').click();
  await page.fill('input[name="delivery.timeout"]', 'forever');
  await page.locator('#section-advanced summary').click();
  await page.click('form#config button[type=submit]');
  await page.locator('#error-summary a[href="#delivery.timeout"]').waitFor();
  check(await page.locator('input[name="delivery.timeout"]').isVisible(), 'the collapsed section with the error is open');
  await page.fill('input[name="delivery.timeout"]', '5s');

  // A valid configuration with the test email on: the relay's answer comes back on the page.
  await page.fill('input[name="sender"]', 'alerts@example.com');
  await page.fill('input[name="smtp.port"]', process.env.SMTP_PORT);
  await page.fill('input[name="admin.addresses"]', 'ops@example.com');
  await page.check('input[name="admin.test_email_on_save"]');
  await page.click('form#config button[type=submit]');
  await page.locator('.notice.ok', { hasText: 'Test email delivered' }).waitFor();
  check(true, 'saving with the test email on reports it delivered');
  check(await page.locator('#redirect-uri').innerText() === `${base}/login/smtp-verification/`, 'the redirect URI to register is shown');
  await page.reload();
  check(await page.locator('.notice.ok', { hasText: 'Test email delivered' }).count() === 0, 'a reload neither saves again nor repeats the notice');
  await page.click('button.copy');
  await page.locator('.copy-said', { hasText: 'Copied' }).waitFor();
  check(true, 'the copy button says the redirect URI was copied');

  // Switch the relay to OAuth2 (no test email this time) and sign in with the device flow.
  await page.uncheck('input[name="admin.test_email_on_save"]');
  await page.selectOption('select[name="smtp.auth"]', 'oauth2');
  check(await page.locator('#section-oauth').isVisible(), 'choosing OAuth2 shows the OAuth fields');
  await page.click('form#config button[type=submit]');
  await page.locator('.notice.ok', { hasText: 'Saved revision' }).waitFor();

  await page.goto(`${base}/oauth`);
  await page.click('text=Use a code on another device');
  const code = await page.locator('#user-code').innerText();
  check(/\S{4,}/.test(code), `the device panel shows the user code in large type (${code})`);
  await page.reload();
  check(await page.locator('#user-code').innerText() === code, 'a reload shows the same code: no second sign-in starts');
  const before = await page.locator('#countdown').innerText();
  await page.waitForTimeout(1500);
  check(before !== await page.locator('#countdown').innerText(), 'the countdown runs');
  await page.evaluate(() => { window.__stillThisPage = true; });
  await shot('oauth-device');

  // The user signs in on "another device": the provider's pages, in a second tab.
  const link = await page.locator('#device-link').getAttribute('href');
  const other = await context.newPage();
  await other.goto(link);
  for (let i = 0; i < 8; i++) {
    const form = other.locator('form').first();
    if (await form.count() === 0) break;
    for (const input of await form.locator('input[type=text], input[type=email], input[type=password], input:not([type])').all()) {
      if (!(await input.inputValue())) await input.fill('operator');
    }
    // oidc-provider's device pages put their Continue button outside the form (form="…").
    const submit = other.locator('button[autofocus], form button[type=submit], form input[type=submit]').first();
    await Promise.all([other.waitForLoadState('load'), submit.click()]);
    await other.waitForTimeout(300);
  }
  await other.close();

  await page.locator('#token-state', { hasText: 'Active' }).waitFor({ timeout: 40000 });
  check(await page.evaluate(() => window.__stillThisPage === true), 'the status turned Active without reloading the page');
  check(await page.locator('#device-done').isVisible(), 'the device panel says the sign-in is done');
  check(!(await page.locator('#device-countdown').isVisible()), 'the countdown goes once the code was used');
  await shot('oauth-active');

  // The outbox: a failed message with the relay's reply and its explanation.
  await page.goto(`${base}/outbox?status=failed`);
  await shot('outbox');
  await page.click(`a[href="/outbox/${process.env.FAILED_MESSAGE}"] >> nth=0`);
  const attempt = page.locator('article.attempt').first();
  check((await attempt.locator('.reply').innerText()).includes('554 5.2.252'), 'the attempt shows the raw reply with its codes');
  check((await attempt.locator('.explanation').innerText()).includes('Send As'), 'the attempt explains what the reply means');
  await shot('outbox-message');

  await page.goto(`${base}/events`);
  await shot('events');
  await page.goto(`${base}/audit`);
  check(await page.locator('td', { hasText: 'config.update' }).count() > 0, 'the audit log lists the changes');
  await shot('audit');

  // German, chosen for the account.
  await page.goto(`${base}/accounts`);
  await page.selectOption('select[name=locale]', 'de');
  await page.click('form[action="/preferences"] button[type=submit]');
  await page.waitForURL(`${base}/accounts`);
  check(await page.getAttribute('html', 'lang') === 'de', 'the page is now in German');
  check(await page.locator('header nav').innerText().then((t) => t.includes('E-Mail-Konfiguration') && t.includes('Postausgang')), 'the navigation speaks German');
  await shot('accounts-de');
  await page.goto(`${base}/email-config`);
  check(await page.locator('legend', { hasText: 'SMTP-Relay-Server' }).count() === 1, 'the configuration page speaks German');
  await shot('email-config-de');
  // Choosing a provider says what its preset would change before anything is saved, and lets it be declined.
  await page.selectOption('select[name="oauth.provider"]', 'google');
  const preset = page.locator('#preset-effect');
  await preset.locator('li', { hasText: 'smtp.gmail.com' }).waitFor();
  check((await preset.innerText()).includes('Der gewählte Anbieter ändert beim Speichern diese Felder'), 'the preset\'s changes are shown first, in German');
  await shot('email-config-preset-de');
  await preset.locator('button.secondary').click();
  check((await preset.innerText()).includes('Ihre Werte bleiben'), 'the administrator can keep their own values');
  check(await page.locator('input[name="keep"]').count() > 0, 'the kept fields go with the form');
  // Events with their titles and severities in words; a message's attempts in words.
  await page.goto(`${base}/events`);
  check(await page.locator('.severity').first().innerText().then((t) => ['Kritisch', 'Warnung', 'Information'].includes(t)), 'each event\'s severity in German words');
  await page.goto(`${base}/outbox/${process.env.FAILED_MESSAGE}`);
  check(await page.locator('article.attempt .result').first().innerText().then((t) => t === 'endgültig abgelehnt'), 'the attempt\'s result in German words');
  check((await page.locator('article.attempt .explanation').first().innerText()).includes('Senden als'), 'the relay\'s reply explained in German');
  await shot('outbox-message-de');

  // A narrow screen.
  await page.setViewportSize({ width: 390, height: 844 });
  for (const path of ['/email-config', '/', '/oauth', '/outbox', `/outbox/${process.env.FAILED_MESSAGE}`, '/events', '/audit', '/accounts']) {
    await page.goto(`${base}${path}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 1, `nothing overflows a 390 px wide screen on ${path} (${overflow} px)`);
    const header = await page.locator('body > header').boundingBox();
    check(header.height < 110, `the header takes at most two lines on ${path} (${Math.round(header.height)} px)`);
  }
  await page.goto(`${base}/email-config`);
  await shot('email-config-narrow');
  await page.goto(`${base}/outbox`);
  await shot('outbox-narrow');

  // An address that does not exist: a page in the interface's style, with the way back.
  const missing = await page.goto(`${base}/no-such-page`);
  check(missing.status() === 404 && await page.locator('a.button[href="/"]').isVisible(), 'an unknown address gets a page with a way back');
  await shot('not-found');
  console.log('all steps passed');
} catch (e) {
  await shot('failure').catch(() => {});
  console.error(e.message);
  console.error(`page: ${page.url()}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
