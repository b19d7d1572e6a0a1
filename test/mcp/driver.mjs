// Drives pg_ves_mcp through the official MCP TypeScript SDK client, for
// test/t/040_mcp.pl. Started as
//   node driver.mjs PROGRAM [ARG...]
// it connects to PROGRAM over stdio (initialize, notifications/initialized),
// then reads one JSON command per line on stdin and answers each with one
// JSON line on stdout:
//   {"op": "info"}                         -> {"server": serverInfo, "capabilities": ...}
//   {"op": "list"}                         -> {"tools": [...]}  (tools/list)
//   {"op": "call", "name": N, "arguments": A, "timeout": ms (optional)}
//       -> {"result": CallToolResult} or {"error": message, "code": JSON-RPC code}
//       (past the timeout the SDK sends notifications/cancelled and gives up)
//   {"op": "ping"}                         -> {"result": {}}
//   {"op": "exit"}                         -> {"closed": true}, then the driver exits
// The SDK checks every structured result against the tool's outputSchema;
// a result that does not fit comes back as an error. EOF on stdin closes the
// client, which closes the server's stdin; the driver then reports the
// server's exit ({"closed": true}). ("exit" does the same without waiting for
// EOF, which a server process started meanwhile may hold off by inheriting
// the write end of the driver's stdin.)
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import readline from 'node:readline';

const [program, ...args] = process.argv.slice(2);
const transport = new StdioClientTransport({
  command: program,
  args,
  env: { ...process.env },
  stderr: 'inherit',
});
const client = new Client({ name: 'pg_ves-test-driver', version: '1.0.0' });

function reply(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

async function run(cmd) {
  switch (cmd.op) {
    case 'info':
      return { server: client.getServerVersion(), capabilities: client.getServerCapabilities(),
               instructions: client.getInstructions() };
    case 'list':
      return await client.listTools();
    case 'ping':
      return { result: await client.ping() };
    case 'call':
      return { result: await client.callTool({ name: cmd.name, arguments: cmd.arguments ?? {} }, undefined,
                                             cmd.timeout ? { timeout: cmd.timeout } : undefined) };
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
}

try {
  await client.connect(transport);
} catch (e) {
  reply({ error: `connect failed: ${e.message}` });
  process.exit(1);
}
reply({ connected: true });

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  if (JSON.parse(line).op === 'exit') break;
  try {
    reply(await run(JSON.parse(line)));
  } catch (e) {
    reply({ error: e.message, code: e.code ?? null });
  }
}
await client.close();
reply({ closed: true });
process.exit(0);
