#!/usr/bin/env node
// End-to-end checks with the official TypeScript SDK client (npm @modelcontextprotocol/client,
// v2, the 2026-07-28 line), beside the Python SDK of scripts/e2e.py. For every example: over
// stdio and Streamable HTTP, as a legacy (2025-11-25 handshake) client and as a 2026-07-28 client
// (pinned: `server/discover`, stateless requests), list tools, resources and prompts, call one
// tool with valid input and get a result whose structuredContent the SDK validated against the
// output schema, and call it with invalid input and get an isError result naming the violation.
// For change-plan, the user's confirmation of its `approval: user` write: on stdio a legacy client
// is asked on the connection; over stateless HTTP a 2026-07-28 client gets `input_required`
// (SEP-2322) and the SDK answers through the same elicitation handler and retries. Yes runs the
// write once, no runs nothing, both audited.
//
// Every example but those whose calls need downstream stand-ins (github-releases, covered by
// scripts/e2e.py with its stand-ins).
//
// Usage: scripts/e2e-ts.mjs [--bin-dir target/debug] [example ...]   (needs scripts/setup-tools)
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// The SDK lives in .tools/ts-client (scripts/setup-tools), not in the repository.
const require = createRequire(join(ROOT, '.tools', 'ts-client', 'package.json'));
const { Client, StreamableHTTPClientTransport } = await import(require.resolve('@modelcontextprotocol/client'));
const { StdioClientTransport } = await import(require.resolve('@modelcontextprotocol/client/stdio'));

const CALLS = JSON.parse(readFileSync(join(ROOT, 'scripts', 'e2e-calls.json'), 'utf8'));
const MODES = { legacy: { mode: 'legacy' }, '2026-07-28': { mode: { pin: '2026-07-28' } } };

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

function invalidArguments(args) {
  const broken = { ...args, charter_e2e_unknown: true };
  for (const key of Object.keys(args)) {
    broken[key] = typeof args[key] === 'string' ? 12345 : 'not-the-right-type';
    break;
  }
  return broken;
}

function textOf(result) {
  return (result.content ?? []).map((c) => c.text ?? '').join(' ');
}

/** Starts `binary http` on a free loopback port; resolves to { process, url }. */
function startHttp(binary, workdir) {
  return new Promise((ok, ko) => {
    const child = spawn(binary, ['http', '--listen', '127.0.0.1:0', '--dev-no-auth'], {
      cwd: workdir,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let seen = '';
    child.stderr.on('data', (chunk) => {
      seen += chunk.toString();
      const match = seen.match(/listening on (http:\/\/\S+)\r?\n/); // the whole line, not a chunk of it
      if (match) ok({ process: child, url: match[1] });
    });
    child.on('exit', (code) => ko(new Error(`${binary} http exited ${code}: ${seen}`)));
  });
}

async function stop(child) {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

function stdio(binary, workdir) {
  return new StdioClientTransport({ command: binary, args: ['stdio'], cwd: workdir, stderr: 'ignore' });
}

async function connect(transport, mode, onElicit) {
  const client = new Client(
    { name: 'charter-e2e-ts', version: '1.0.0' },
    { capabilities: onElicit ? { elicitation: {} } : {}, versionNegotiation: MODES[mode] },
  );
  if (onElicit) client.setRequestHandler('elicitation/create', onElicit);
  await client.connect(transport);
  return client;
}

async function exercise(example, transport, mode, label) {
  const [toolName, args] = CALLS[example];
  const client = await connect(transport, mode);
  try {
    const { tools } = await client.listTools();
    const tool = tools.find((t) => t.name === toolName);
    if (!tool) fail(`${label}: ${toolName} not in tools/list`);
    const { resources } = await client.listResources();
    const { prompts } = await client.listPrompts();
    // callTool validates structuredContent against the tool's outputSchema itself.
    const result = await client.callTool({ name: toolName, arguments: args });
    if (result.isError) fail(`${label}: valid call of ${toolName} failed: ${textOf(result)}`);
    if (tool.outputSchema && !result.structuredContent) fail(`${label}: ${toolName} returned no structuredContent`);
    const bad = await client.callTool({ name: toolName, arguments: invalidArguments(args) });
    const badText = textOf(bad);
    if (!bad.isError) fail(`${label}: invalid call of ${toolName} was not an isError result`);
    if (!badText.includes('charter_e2e_unknown') || !badText.includes('invalid arguments')) {
      fail(`${label}: the error does not name the violation: ${badText}`);
    }
    console.log(
      `ok  ${label}: ${tools.length} tools, ${resources.length} resources, ${prompts.length} prompts; ` +
        `valid and invalid calls of ${toolName}`,
    );
  } finally {
    await client.close();
  }
}

function audited(workdir, event, name) {
  const path = join(workdir, 'audit.jsonl');
  if (!existsSync(path)) return 0;
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l))
    .filter((r) => r.event === event && r.name === name).length;
}

async function userApproval(binary, workdir, answer, http) {
  const asked = [];
  const onElicit = async (request) => {
    asked.push(request.params.message);
    return answer ? { action: 'accept', content: { confirm: true } } : { action: 'decline' };
  };
  let server;
  let transport;
  let mode;
  let label;
  if (http) {
    server = await startHttp(binary, workdir);
    transport = new StreamableHTTPClientTransport(new URL(server.url));
    [mode, label] = ['2026-07-28', 'http 2026-07-28 (input_required)'];
  } else {
    transport = stdio(binary, workdir);
    [mode, label] = ['legacy', 'stdio legacy'];
  }
  const before = audited(workdir, 'intent', 'open_change_request');
  let result;
  let planId;
  try {
    const client = await connect(transport, mode, onElicit);
    try {
      const window = { start: '2026-12-02T06:00:00Z', end: '2026-12-02T07:00:00Z' };
      const draft = await client.callTool({
        name: 'draft_change_plan',
        arguments: {
          service: 'checkout-web',
          environment: 'production',
          target_revision: 'c05a8f3e6d29b17c4e80f5a2d93b6c1e7f40a8d2',
          rollout: 'rolling',
          window,
        },
      });
      planId = draft.structuredContent.plan_id;
      result = await client.callTool({
        name: 'open_change_request',
        arguments: {
          plan_id: planId,
          change_type: 'standard',
          assignment_group: 'platform-infrastructure',
          window,
          justification: 'Ship the checkout-web 2.8.1 address-form fix.',
        },
      });
    } finally {
      await client.close();
    }
  } finally {
    if (server) await stop(server.process);
  }
  const text = textOf(result);
  if (asked.length !== 1 || !asked[0].includes(planId) || !asked[0].includes('open_change_request')) {
    fail(`change-plan ${label}: the confirmation did not show the exact operation: ${JSON.stringify(asked)}`);
  }
  if (answer && (result.isError || !text.includes('CHG'))) fail(`change-plan ${label}: a confirmed write did not run: ${text}`);
  if (!answer && (!result.isError || !text.includes('did not confirm'))) {
    fail(`change-plan ${label}: a declined write was not refused: ${text}`);
  }
  const ran = audited(workdir, 'intent', 'open_change_request') - before;
  if (ran !== (answer ? 1 : 0)) fail(`change-plan ${label}: ${ran} intent records for one call`);
  console.log(`ok  change-plan ${label}: user approval ${answer ? 'confirmed, ran once' : 'declined, nothing ran'}`);
}

async function main() {
  const argv = process.argv.slice(2);
  let binDir = join(ROOT, 'target', 'debug');
  const examples = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--bin-dir') binDir = resolve(argv[++i]);
    else examples.push(argv[i]);
  }
  // Examples whose calls reach a downstream stand-in (specs/standins/) run in scripts/e2e.py, which
  // starts the stand-ins; the rest run here.
  const standalone = Object.keys(CALLS)
    .sort()
    .filter((e) => !existsSync(join(ROOT, 'specs', 'standins', `${e.split('-')[0]}.json`)));
  for (const example of examples.length ? examples : standalone) {
    const binary = join(binDir, example);
    if (!existsSync(binary)) fail(`${binary} is missing: run \`cargo build --workspace\` first`);
    const workdir = mkdtempSync(join(tmpdir(), `charter-e2e-ts-${example}-`));
    for (const mode of Object.keys(MODES)) {
      await exercise(example, stdio(binary, workdir), mode, `${example} stdio ${mode}`);
      const server = await startHttp(binary, workdir);
      try {
        await exercise(example, new StreamableHTTPClientTransport(new URL(server.url)), mode, `${example} http ${mode}`);
      } finally {
        await stop(server.process);
      }
    }
    if (example === 'change-plan') {
      for (const http of [false, true]) {
        await userApproval(binary, workdir, true, http);
        await userApproval(binary, workdir, false, http);
      }
    }
  }
  console.log('e2e-ts: all checks passed');
}

await main();
