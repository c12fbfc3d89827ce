// tests/ui/ui.test.mjs — the web UI in a real browser: playwright-core driving
// Debian's chromium headless against `datamesh up --demo` (and a second
// controller with --auth). Visits every page, checks real content, takes a
// screenshot of each into OUT.
//   node ui.test.mjs DEMO_URL AUTH_URL ADMIN_TOKEN_FILE OUT
import { readFileSync, mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

const [demo, authBase, tokenFile, out] = process.argv.slice(2);
mkdirSync(out, { recursive: true });
let passed = 0, failed = 0;
const problems = [];
let allowHttpErrors = false;

async function step(name, fn) {
  try { await fn(); console.log('ok   ' + name); passed++; }
  catch (e) { console.log(`FAIL ${name}: ${String(e.message || e).split('\n').slice(0, 4).join(' | ')}`); failed++; }
}
function expect(cond, what) { if (!cond) throw new Error(what); }
const T = { timeout: 20000 };

const browser = await chromium.launch({ executablePath: process.env.DM_CHROMIUM || '/usr/bin/chromium', headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });

async function newPage(label) {
  const context = await browser.newContext({ viewport: { width: 1360, height: 860 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on('pageerror', e => problems.push(`${label}: page error: ${e.message}`));
  page.on('console', m => {
    if (m.type() !== 'error') return;
    // Steps that make the server refuse on purpose (a bad spec, a bad token) say so.
    if (allowHttpErrors && /Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) return;
    // A push query polls its output's records until the pipeline has made them (404, 409).
    if (/status of 40[49]/.test(m.text()) && /\/records\?/.test(m.location().url || '')) return;
    problems.push(`${label}: console error: ${m.text()}`);
  });
  page.on('dialog', d => d.accept());
  return { context, page };
}
const shot = (page, name, fullPage = true) => page.screenshot({ path: `${out}/${name}.png`, fullPage });
const rowsText = async (page, sel) => page.$$eval(sel, trs => trs.map(t => t.innerText));

// ---- the demo, without --auth ---------------------------------------------------
{
  const { page } = await newPage('demo');

  await step('catalog lists the demo sources', async () => {
    await page.goto(demo + '/');
    await page.waitForURL(/\/catalog$/);
    await page.waitForSelector('table.catalog tbody tr:nth-child(3)');
    const rows = await rowsText(page, 'table.catalog tbody tr');
    expect(rows.some(r => r.startsWith('plays') && r.includes('playback-team') && r.includes('datagen') && r.includes('us-plays')), 'plays row: ' + rows);
    expect(rows.some(r => r.startsWith('movies') && r.includes('catalog-team')), 'movies row');
    expect(rows.some(r => r.startsWith('us-plays') && r.includes('derived')), 'us-plays row');
    await shot(page, '01-catalog');
  });

  await step('catalog search by field, in the URL', async () => {
    await page.fill('#catalog-q', 'title');
    await page.press('#catalog-q', 'Enter');
    await page.waitForFunction(() => document.querySelectorAll('table.catalog tbody tr').length === 1);
    const rows = await rowsText(page, 'table.catalog tbody tr');
    expect(rows[0].startsWith('movies'), 'hits: ' + rows); // movies has a field 'title'
    expect(page.url().endsWith('/catalog?q=title'), 'url ' + page.url());
    await shot(page, '02-catalog-search');
    await page.goBack();
    await page.waitForFunction(() => document.querySelectorAll('table.catalog tbody tr').length === 3);
    expect(page.url().endsWith('/catalog'), 'back to ' + page.url());
  });

  await step('source page: owner, consumers, partitions', async () => {
    await page.click('table.catalog a:text-is("plays")');
    await page.waitForURL(/\/sources\/plays$/);
    await page.waitForSelector('table.partitions tbody tr:nth-child(2)');
    const facts = await page.innerText('dl.facts');
    expect(facts.includes('playback-team') && facts.includes('us-plays'), facts);
    const parts = await rowsText(page, 'table.partitions tbody tr');
    expect(parts.length === 2 && parts.every(r => /^\d\t0\t\d+/.test(r)), 'partitions ' + parts);
    expect(await page.getAttribute('h1 a.lineage-link', 'href') === '/lineage?node=plays', 'lineage link');
    await shot(page, '03-source');
  });

  await step('source fields and schema versions', async () => {
    await page.click('.tabs button:text-is("Fields")');
    await page.waitForSelector('table.fields tbody tr');
    const f = await rowsText(page, 'table.fields tbody tr');
    expect(f.some(r => r.startsWith('country\tstring')) && f.some(r => r.startsWith('device\tstring?')), 'fields ' + f);
    await page.click('.tabs button:text-is("Schema versions")');
    await page.waitForSelector('#compat');
    expect((await page.innerText('#compat')) === 'BACKWARD', 'compat');
    expect(page.url().endsWith('/sources/plays?tab=schema'), page.url());
  });

  await step('live tail receives records; pause holds; filter keeps US', async () => {
    await page.click('.tabs button:text-is("Live tail")');
    const shown = async () => parseInt((await page.innerText('.tab-body .toolbar .muted')).match(/(\d+) records shown/)[1], 10);
    await page.waitForFunction(() => document.querySelectorAll('#tail-rows tr').length >= 3, null, T);
    const first = await rowsText(page, '#tail-rows tr');
    expect(first[0].includes('"country"') && first[0].includes('"movie_id"'), 'a decoded record: ' + first[0]);
    await page.click('#tail-pause');
    const paused = await shown();
    await page.waitForTimeout(2500);
    expect(await shown() === paused, 'paused but still adding');
    await page.click('#tail-pause');
    await page.fill('#tail-filter', "country = 'US'");
    const before = await shown();
    await page.waitForFunction(b => parseInt(document.querySelector('.tab-body .toolbar .muted').innerText.match(/(\d+) records/)[1], 10) >= b + 2, before, T);
    const now = await shown();
    const rows = await rowsText(page, '#tail-rows tr');
    const fresh = rows.slice(0, Math.min(now - before, rows.length));
    expect(fresh.length >= 2 && fresh.every(r => r.includes('"country":"US"')), 'filtered: ' + fresh.join(' // '));
    await shot(page, '04-source-tail');
  });

  await step('back and forward between tabs', async () => {
    await page.goBack();
    await page.waitForSelector('#compat');
    expect(page.url().endsWith('tab=schema'), page.url());
    await page.goForward();
    await page.waitForSelector('#tail-rows');
    expect(page.url().includes('tab=tail'), page.url());
  });

  await step('us-plays graph with live rates', async () => {
    await page.goto(demo + '/pipelines/us-plays');
    await page.waitForSelector('#pipeline-graph svg .node');
    const titles = await page.$$eval('#pipeline-graph svg .node .node-title', ts => ts.map(t => t.textContent));
    for (const want of ['plays', 'stage main · 2 tasks', 'us-plays', 'movies', 'file sink', 'dead letters'])
      expect(titles.includes(want), `node ${want} in ${titles}`);
    await page.waitForFunction(() => [...document.querySelectorAll('#pipeline-graph .edge-label')]
      .some(t => /^([1-9][\d.]*|0\.[1-9]\d*) rec\/s · lag \d+/.test(t.textContent)), null, T);
    const labels = await page.$$eval('#pipeline-graph .edge-label', ts => ts.map(t => t.textContent));
    expect(labels.some(l => /rec\/s/.test(l)), 'labels ' + labels);
    expect((await page.innerText('#pipeline-state')) === 'running', 'state badge');
    await shot(page, '05-pipeline-graph');
  });

  await step('pipeline status, spec, plan and dead letters', async () => {
    await page.click('.tabs button:text-is("Status")');
    await page.waitForSelector('table.units tbody tr:nth-child(4)');
    const units = await rowsText(page, 'table.units tbody tr');
    expect(units.some(u => u.startsWith('us-plays/task/0\ttask\trunning')) && units.some(u => u.startsWith('us-plays/sink/0\tsink')), 'units ' + units);
    await page.click('.tabs button:text-is("Spec")');
    expect((await page.innerText('#pipeline-spec')).includes("- filter: \"country = 'US' AND amount > 0\""), 'spec yaml');
    await page.click('.tabs button:text-is("Plan")');
    await page.waitForSelector('#pipeline-plan');
    expect((await page.innerText('#pipeline-plan')).includes('fused chain'), 'plan');
    await page.click('.tabs button:text-is("Dead letters")');
    await page.waitForSelector('table.dead');
    expect((await page.innerText('.tab-body')).includes('pipeline.us-plays.dlq'), 'dead letters');
    await page.click('.tabs button:text-is("Schema changes")');
    await page.waitForSelector('table.schema-changes');
    const sc = await page.innerText('.tab-body');
    expect(sc.includes('spec.schema_change: lenient; 0 changes met') && sc.includes('no schema changes met'), 'schema changes ' + sc);
    await shot(page, '06-pipeline-status');
  });

  await step('dashboard charts move', async () => {
    await page.click('.tabs button:text-is("Dashboard")');
    await page.waitForURL(/tab=dashboard/);
    await page.waitForFunction(() => {
      const l = document.querySelector('#dashboard figure .legend.l0');
      return l && /^in [1-9][\d.]*\/s$/.test(l.textContent);
    }, null, T);
    const charts = await page.$$eval('#dashboard figcaption strong', t => t.map(x => x.textContent));
    for (const want of ['Records/s', 'Lag (records)', 'Dead letters/s', '0. filter', '1. project', '2. enrich'])
      expect(charts.includes(want), `chart ${want} in ${charts}`);
    const pts = await page.$eval('#dashboard svg.chart polyline.l0', p => p.getAttribute('points').split(' ').length);
    expect(pts >= 2, 'points ' + pts);
    await shot(page, '07-pipeline-dashboard');
  });

  await step('lineage of a field, drill-down and direction', async () => {
    await page.click('h1 a.lineage-link');
    await page.waitForURL(/\/lineage\?node=pipeline%3Aus-plays$/);
    await page.goto(demo + '/lineage?node=us-plays.title&direction=upstream');
    await page.waitForSelector('#lineage-out svg .node');
    const nodes = await page.$$eval('#lineage-out svg .node-title', ts => ts.map(t => t.textContent));
    expect(nodes.includes('movies.title') && nodes.includes('plays.country') && nodes.includes('us-plays.title'), 'nodes ' + nodes);
    const edges = await rowsText(page, 'table.lineage-edges tbody tr');
    expect(edges.some(e => e.startsWith('movies.title\tus-plays.title\tDIRECT IDENTITY\tus-plays')), 'edges ' + edges);
    await page.waitForSelector('#lineage-fields li');
    await shot(page, '07b-lineage-field');
    await page.click('table.lineage-edges a:text-is("plays.country")');
    await page.waitForURL(/node=plays\.country/);
    await page.selectOption('#lineage-direction', 'downstream');
    await page.click('form.toolbar button[type=submit]');
    await page.waitForURL(/node=plays\.country&direction=downstream/);
    await page.waitForSelector('#lineage-out svg .node');
    const down = await page.$$eval('#lineage-out svg .node-title', ts => ts.map(t => t.textContent));
    expect(down.includes('us-plays.title') && down.includes('us-plays.cents'), 'downstream ' + down);
  });

  await step('editor: error at its line, fixed, applied, deleted', async () => {
    await page.goto(demo + '/editor');
    const bad = "kind: Pipeline\nmetadata: {name: fr-plays, owner: growth}\nspec:\n  from: [plays]\n  steps:\n    - filter: \"country = = 'FR'\"\n  to:\n    - source: fr-plays\n";
    await page.fill('#spec', bad);
    allowHttpErrors = true;
    await page.click('#dry-run');
    await page.waitForSelector('#editor-error');
    const err = await page.innerText('#editor-error');
    expect(err.startsWith('line 6, column 26: ') && err.includes('expected a value'), 'error ' + err); // the second '='
    expect((await page.innerText('.gutter .bad')).trim() === '6', 'gutter marks line 6');
    await shot(page, '08-editor-error');
    allowHttpErrors = false;
    await page.fill('#spec', bad.replace('= =', '='));
    await page.click('#dry-run');
    await page.waitForSelector('#editor-ok');
    expect((await page.innerText('#editor-out')).includes('create\tPipeline\tfr-plays'), 'dry-run plan');
    await page.click('#apply');
    await page.waitForFunction(() => (document.querySelector('#editor-ok') || {}).innerText === 'Applied.');
    await page.click('#editor-out a[href="/pipelines/fr-plays"]');
    await page.waitForURL(/\/pipelines\/fr-plays$/);
    await page.waitForFunction(() => (document.querySelector('#pipeline-state') || {}).innerText === 'running', null, T);
    await page.click('button:text-is("Delete…")');
    await page.waitForURL(/\/pipelines$/);
    await page.waitForSelector('table.grid tbody tr');
    const names = await page.$$eval('table.grid tbody tr td:first-child', t => t.map(x => x.innerText));
    expect(!names.includes('fr-plays') && names.includes('us-plays'), 'after delete ' + names);
  });

  await step('dead letters of a failing step, found and shown', async () => {
    // A step that fails on every record it gets: each becomes a dead letter with the reason.
    const spec = "kind: Pipeline\nmetadata: {name: dl-demo, owner: growth}\nspec:\n  from: [plays]\n  steps:\n" +
      "    - filter: \"country = 'JP'\"\n    - project: [id, \"movie_id / (movie_id - movie_id) AS boom\"]\n  to:\n    - source: dl-demo\n";
    const r = await page.evaluate(async body => (await fetch('/api/v1/apply', { method: 'POST', body })).status, spec);
    expect(r === 200, 'apply ' + r);
    await page.goto(demo + '/pipelines/dl-demo');
    await page.waitForFunction(() => /^[1-9]\d* records$/.test(document.querySelector('#pipeline-graph .node.dlq .node-line')?.textContent || ''), null, T);
    await page.click('#pipeline-graph .node.dlq');
    await page.waitForURL(/\/pipelines\/dl-demo\?tab=dead$/);
    await page.waitForSelector('table.dead tbody tr td .reason');
    const rows = await rowsText(page, 'table.dead tbody tr');
    expect(rows.every(x => x.includes('division by zero') && /\tproject\t/.test(x) && /plays\[[01]\]@\d+/.test(x) && x.includes('"country":"JP"')), 'dead letters ' + rows.slice(0, 2));
    await shot(page, '09-dead-letters', false);
    await page.click('button:text-is("Delete…")');
    await page.waitForURL(/\/pipelines$/);
  });

  await step('SQL: explain and show sources, an error at its line and column', async () => {
    await page.click('nav a:text-is("SQL")');
    await page.waitForURL(/\/sql$/);
    await page.fill('#sql', "EXPLAIN SELECT id, country FROM plays WHERE country = 'US';\nSHOW SOURCES;\n");
    await page.click('#sql-run');
    await page.waitForSelector('#sql-out .sql-result pre');
    const text = await page.innerText('#sql-out');
    expect(text.includes('1. explain') && text.includes('fused chain') && text.includes("country = 'US'"), 'explain ' + text.slice(0, 300));
    const srcs = await rowsText(page, 'table.sql-sources tbody tr');
    expect(srcs.some(r => r.startsWith('plays\tplayback-team\tdatagen')) && srcs.some(r => r.startsWith('movies')), 'sources ' + srcs);
    await shot(page, '09c-sql');
    allowHttpErrors = true;
    await page.fill('#sql', 'SHOW SOURCES;\nSELECT FROM x;');
    await page.click('#sql-run');
    await page.waitForSelector('#sql-out .error');
    expect((await page.innerText('#sql-out .error')).includes('SQL line 2, column 8'), 'error');
    expect((await page.innerText('#sql-excerpt')).includes('   2 | SELECT FROM x;'), 'excerpt');
    allowHttpErrors = false;
  });

  const pipelinesText = () => page.evaluate(async () => await (await fetch('/api/v1/pipelines')).text());
  await step('SQL: a push query streams rows; Stop deletes its pipeline', async () => {
    await page.fill('#sql', 'SELECT id, country, movie_id, amount FROM plays WHERE amount > 0;');
    await page.check('#sql-from-beginning');
    await page.fill('#sql-limit', '5000');
    await page.click('#sql-run');
    await page.waitForFunction(() => document.querySelectorAll('#sql-rows tr').length >= 3, null, T);
    const first = await page.$$eval('#sql-rows tr', t => t.length);
    const heads = await page.$$eval('table.sql-rows thead th', t => t.map(x => x.innerText));
    expect(heads.join(',') === 'id,country,movie_id,amount', 'columns ' + heads);
    const row = (await rowsText(page, '#sql-rows tr'))[0].split('\t');
    expect(/^\d+$/.test(row[0]) && /^[A-Z]{2}$/.test(row[1]) && +row[3] > 0, 'a row ' + row);
    await page.waitForFunction(n => document.querySelectorAll('#sql-rows tr').length > n, first, T); // still arriving
    const status = await page.innerText('#sql-push-status');
    expect(/^\d+ rows · streaming from sql-query-ui-/.test(status), 'status ' + status);
    expect((await pipelinesText()).includes('sql-query-ui-'), 'the temporary pipeline runs');
    await shot(page, '09d-sql-push', false);
    await page.click('#sql-stop');
    await page.waitForFunction(() => /stopped; pipeline sql-query-ui-\S+ deleted/.test(document.querySelector('#sql-push-status').innerText));
    const n = await page.$$eval('#sql-rows tr', t => t.length);
    await page.waitForTimeout(1500);
    expect(await page.$$eval('#sql-rows tr', t => t.length) === n, 'rows after Stop');
    for (let i = 0; i < 50 && (await pipelinesText()).includes('sql-query-ui-'); i++) await page.waitForTimeout(200);
    expect(!(await pipelinesText()).includes('sql-query-ui-'), 'the temporary pipeline is deleted');
  });

  await step('SQL: a push query with a bad column: its error at the line and column', async () => {
    allowHttpErrors = true;
    await page.fill('#sql', '-- plays\n\nSELECT id FROM plays WHERE amout > 1;\n');
    await page.click('#sql-run');
    await page.waitForSelector('#sql-out .error');
    const err = await page.innerText('#sql-out .error');
    expect(err.includes('line 3, column 28') && err.includes("did you mean 'amount'"), 'error ' + err);
    expect((await page.innerText('#sql-excerpt')).includes('   3 | SELECT id FROM plays WHERE amout > 1;'), 'excerpt');
    allowHttpErrors = false;
    expect(!(await pipelinesText()).includes('sql-query-ui-'), 'nothing applied');
  });

  await step('SQL: leaving the page deletes a running push query', async () => {
    await page.fill('#sql', "SELECT id FROM plays WHERE country = 'US'");
    await page.click('#sql-run');
    await page.waitForFunction(() => /streaming from/.test(document.querySelector('#sql-push-status')?.innerText || ''), null, T);
    expect((await pipelinesText()).includes('sql-query-ui-'), 'running');
    await page.click('nav a:text-is("Catalog")');
    await page.waitForSelector('table.catalog tbody tr');
    for (let i = 0; i < 50 && (await pipelinesText()).includes('sql-query-ui-'); i++) await page.waitForTimeout(200);
    expect(!(await pipelinesText()).includes('sql-query-ui-'), 'deleted on leaving');
  });

  await step('SQL: create as source makes a source in the catalog', async () => {
    await page.goto(demo + '/sql');
    await page.fill('#sql', "SELECT id, country FROM plays WHERE country = 'FR'");
    await page.fill('#sql-as-name', 'fr-sql');
    await page.click('#sql-create-as');
    await page.waitForSelector('#sql-out a[href="/sources/fr-sql"]');
    expect((await page.inputValue('#sql')).startsWith('CREATE SOURCE "fr-sql" AS SELECT id, country FROM plays'), 'rewritten');
    await page.click('nav a:text-is("Catalog")');
    await page.waitForFunction(() => [...document.querySelectorAll('table.catalog tbody tr')].some(r => r.innerText.startsWith('fr-sql')), null, T);
    const r = await page.evaluate(async () => (await fetch('/api/v1/sql', { method: 'POST', body: 'DROP SOURCE "fr-sql";' })).status);
    expect(r === 200, 'drop ' + r);
  });

  await step('schema registry', async () => {
    await page.click('nav a:text-is("Schema registry")');
    await page.waitForSelector('#subjects li');
    await page.click('#subjects a:text-is("plays-value")');
    await page.waitForURL(/subject=plays-value/);
    await page.waitForSelector('.registry-detail table');
    const d = await page.innerText('.registry-detail');
    expect(d.includes('BACKWARD') && d.includes('country'), d);
    await shot(page, '09b-registry');
  });
  await page.context().close();
}

// ---- with --auth: signing in ------------------------------------------------------
{
  const token = readFileSync(tokenFile, 'utf8').trim();
  const { context, page } = await newPage('auth');
  allowHttpErrors = true; // signed out, every API call is 401 until signing in
  await step('signed out: pages go to sign-in', async () => {
    await page.goto(authBase + '/pipelines/us-plays');
    await page.waitForURL(/\/signin\?next=%2Fpipelines%2Fus-plays$/);
    await page.waitForSelector('form.signin #token');
    await shot(page, '10-signin');
  });
  await step('a bad token is refused with its reason', async () => {
    await page.fill('#token', 'dmt_nonsense');
    await page.click('form.signin button[type=submit]');
    await page.waitForSelector('form.signin .error');
    expect((await page.innerText('form.signin .error')).includes('malformed token'), 'reason');
    await page.fill('#token', 'dmt_0123456789ab_' + '0'.repeat(64));
    await page.click('form.signin button[type=submit]');
    await page.waitForFunction(() => (document.querySelector('form.signin .error')?.innerText || '').includes('unknown or invalid token'));
    expect(page.url().includes('/signin'), 'still on sign-in');
    expect(await page.inputValue('#token') === '', 'the field is emptied');
  });
  await step('sign in: back where it was, session cookie only', async () => {
    await page.fill('#token', token);
    await page.click('form.signin button[type=submit]');
    await page.waitForURL(/\/pipelines\/us-plays$/);
    await page.waitForSelector('#pipeline-graph svg .node');
    expect((await page.innerText('#who')).includes('admin · admin'), 'who');
    const cookies = await context.cookies();
    const c = cookies.find(x => x.name === 'dm_session');
    expect(c && c.httpOnly && c.sameSite === 'Strict' && c.path === '/', 'cookie ' + JSON.stringify(cookies));
    expect(!c.value.includes(token.slice(17)), 'cookie is not the token');
    const visible = await page.evaluate(() => document.cookie + document.documentElement.outerHTML + JSON.stringify(localStorage) + JSON.stringify(sessionStorage));
    expect(!visible.includes(token.slice(17)) && !visible.includes('dm_session'), 'token or cookie readable by the page');
    await shot(page, '11-signed-in');
  });
  await step('CSRF: a request without the header is refused', async () => {
    const r = await page.evaluate(async () => {
      const res = await fetch('/api/v1/apply?dry_run=true', { method: 'POST', body: 'kind: Source\nmetadata: {name: x, owner: admin}\nspec: {connector: ingest, schema: {type: record, name: X, fields: [{name: id, type: long}]}}\n' });
      return [res.status, await res.text()];
    });
    expect(r[0] === 403 && r[1].includes('X-CSRF-Token'), 'answer ' + r);
  });
  await step('sign out', async () => {
    await page.click('#who button:text-is("Sign out")');
    await page.waitForURL(/\/signin$/);
    const s = await page.evaluate(async () => (await fetch('/api/v1/catalog')).status);
    expect(s === 401, 'after sign-out ' + s);
  });
  await context.close();
}

await step('no console errors or page errors', async () => { expect(problems.length === 0, problems.join(' // ')); });
await browser.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
