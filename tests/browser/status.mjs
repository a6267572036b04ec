// The status page in a real browser (Debian's chromium, playwright-core), in one state of the daemon: run by
// crates/server/tests/browser.rs once per state it sets up. Env: TIDINGS_URL, TIDINGS_USER, TIDINGS_PASSWORD,
// STATE (a name for the screenshots), LEVEL (ok, warn or bad), SAYS_EN and SAYS_DE (the overall line),
// ACTION (the href the action leads to, or "form" for the test mail), LIVE (1: check that the page follows the
// daemon without a reload), SCREENSHOTS. Exits non-zero on the first failed step, saying which.
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const require = createRequire(new URL('../peers/node/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const { TIDINGS_URL: base, STATE: state, LEVEL: level, SAYS_EN: saysEn, SAYS_DE: saysDe, ACTION: action } = process.env;
const shots = process.env.SCREENSHOTS;
mkdirSync(shots, { recursive: true });

function check(condition, what) {
  if (!condition) throw new Error(`FAILED (${state}): ${what}`);
  console.log(`ok - ${state}: ${what}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  headless: true,
});

async function signedIn(locale, viewport) {
  const context = await browser.newContext({ locale, viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  await page.goto(`${base}/login?next=/`);
  await page.fill('input[name=username]', process.env.TIDINGS_USER);
  await page.fill('input[name=password]', process.env.TIDINGS_PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForURL(`${base}/`);
  return page;
}

let page;
try {
  page = await signedIn('en-GB', { width: 1280, height: 900 });
  const overall = page.locator('.overall');
  check(await overall.getAttribute('class') === `overall ${level}`, `the whole is ${level}`);
  check((await overall.innerText()).includes(saysEn), `it says "${saysEn}"`);
  const words = await page.locator('.card h2 .state').allInnerTexts();
  check(words.length >= 5 && words.every((w) => w.trim().length > 1), `each part's level is in words, not colour alone (${words.join(', ')})`);
  if (action === 'form') {
    check(await overall.locator('form[action="/email-config/test"] button').isVisible(), 'the action offered is a test mail');
  } else {
    check(await overall.locator(`a.button[href^="${action}"]`).isVisible(), `the action offered leads to ${action}`);
  }
  await page.screenshot({ path: join(shots, `status-${state}.png`), fullPage: true });

  if (process.env.LIVE === '1') {
    const before = await page.locator('#glance-mail').innerText();
    await page.evaluate(() => { window.__stillThisPage = true; });
    const sent = await page.evaluate(async () => {
      const response = await fetch('/api/v1/messages', {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': window.tidings.csrf() },
        body: JSON.stringify({ to: ['ops@example.com'], subject: 'live', text: 'x' }),
      });
      return (await response.json()).id;
    });
    await page.locator(`#glance-mail a[href="/outbox/${sent}"]`).first().waitFor({ timeout: 20000 });
    check(await page.evaluate(() => window.__stillThisPage === true) && before !== await page.locator('#glance-mail').innerText(),
      `the page showed message ${sent} delivered without a reload`);
  }

  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `nothing overflows a 390 px wide screen (${overflow} px)`);
  const header = await page.locator('body > header').boundingBox();
  check(header.height < 110, `the header takes at most two lines on a phone (${Math.round(header.height)} px)`);
  await page.screenshot({ path: join(shots, `status-${state}-phone.png`), fullPage: true });

  const german = await signedIn('de-DE', { width: 390, height: 844 });
  check((await german.locator('.overall').innerText()).includes(saysDe), `in German it says "${saysDe}"`);
  await german.screenshot({ path: join(shots, `status-${state}-de-phone.png`), fullPage: true });
  console.log('all steps passed');
} catch (e) {
  if (page) await page.screenshot({ path: join(shots, `status-${state}-failure.png`) }).catch(() => {});
  console.error(e.message);
  process.exitCode = 1;
} finally {
  await browser.close();
}
