// The chat page of llmos serve in headless Chromium (Debian's), driven by Playwright: a message
// typed and sent gets a streamed answer; a second answer is stopped mid-stream with the Stop
// button, and the server frees its slot; New chat clears the conversation.
// usage: node page_test.mjs URL [SCREENSHOT.png]
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chromium } from 'playwright-core';

const url = process.argv[2], screenshot = process.argv[3];
const running = async () => Number((await (await fetch(`${url}/metrics`)).text()).match(/^llmos_requests_running (\d+)/m)[1]);

test('the chat page streams an answer, stops one, starts anew', async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    const outside = [];
    page.on('request', (r) => { if (!r.url().startsWith(url)) outside.push(r.url()); });
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    await page.goto(url);
    assert.equal(await page.title(), 'llmos chat');

    // A message typed and sent with Enter: the answer streams in (Stop is enabled while it does).
    await page.fill('#temperature', '0');
    await page.fill('#input', 'Who are you?');
    await page.press('#input', 'Enter');
    await page.waitForSelector('.msg.user');
    const answer = page.locator('.msg.assistant').first();
    await page.waitForFunction(() => !document.getElementById('stop').disabled || document.querySelector('.msg.assistant').textContent);
    await page.waitForFunction(() => document.getElementById('send').disabled === false, null, { timeout: 60000 });
    assert.match(await answer.textContent(), /llmos/);
    assert.equal(await page.locator('.msg.user').first().textContent(), 'Who are you?');

    // At temperature 2 the model rambles on until its context is full (a fraction of a second on
    // a fast machine): Stop, pressed once the answer is streaming, ends it early. If the answer
    // ended before the click landed, the button is disabled again and the test asks anew.
    let second = null, stopped = false;
    for (let attempt = 0; attempt < 5 && !stopped; attempt++) {
      await page.fill('#temperature', '2');
      await page.fill('#input', 'Tell me a very long story.');
      await page.click('#send');
      second = page.locator('.msg.assistant').last();
      await page.waitForFunction(() => [...document.querySelectorAll('.msg.assistant')].pop().textContent.length > 0);
      try {
        await page.click('#stop', { timeout: 1000 });
      } catch {
        continue; /* the answer was complete first */
      }
      await page.waitForFunction(() => document.getElementById('send').disabled === false);
      stopped = (await second.textContent()).endsWith('[stopped]');
    }
    assert.ok(stopped, 'Stop never caught an answer while it streamed');
    assert.equal(await page.isEnabled('#send'), true);
    assert.equal(await page.isDisabled('#stop'), true);
    const stoppedAt = (await second.textContent()).length;
    await page.waitForTimeout(300);
    assert.equal((await second.textContent()).length, stoppedAt, 'no text arrives after Stop');
    // The server notices the closed stream and frees the slot at its next token.
    for (let i = 0; i < 50 && (await running()) !== 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await running(), 0, 'the stopped request still holds a slot');
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });

    // New chat: the log is cleared.
    await page.click('#new');
    assert.equal(await page.locator('.msg').count(), 0);
    assert.deepEqual(outside, [], 'the page made requests elsewhere');
    assert.deepEqual(errors, [], 'the page reported errors');
  } finally {
    await browser.close();
  }
});
