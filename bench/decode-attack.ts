/**
 * `node .build/bench/decode-attack.js [path/to/main.js]`: what large requests of the wrong shape
 * cost the server's main thread (issue 15, item 4). A server process on the demo classifier and a
 * BYTES identity model; per attack, 4 clients each send 2 requests of about 50 MB that the model
 * refuses for their batch size, while this process asks the live probe (GET /v2/health/live)
 * every 10 ms. Prints, per attack, the slowest probe answer and the slowest refusal; the server's
 * own event-loop delay (its /health) after all of them. The bodies are built before the clock
 * starts, the gRPC one serialized once: this process only sends bytes while it measures.
 *
 * Compare two servers on the same machine in one sitting (this one, and an older build's main.js).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { classifierModel } from '../scripts/build-models.js';
import { identityModelOf } from '../test/support/identity-models.js';
import { grpcFrame, MODEL_INFER_PATH, rawGrpcCall, serializeModelInferRequest } from '../test/support/raw-grpc.js';
import { Children, freePort, waitForReady } from './processes.js';

const CLIENTS = 4;
const ROUNDS = 2;
const main = process.argv[2] ?? fileURLToPath(new URL('../src/main.js', import.meta.url));

const numbers = 7_000_000;
const strings = 15_000_000;
const floats = 13_000_000;
const attacks: { name: string; send: (http: string, grpc: string) => Promise<number> }[] = [];

const jsonNumbers = Buffer.from(JSON.stringify({ inputs: [{ name: 'input', shape: [numbers / 4, 4], datatype: 'FP32', data: Array.from({ length: numbers }, (_, i) => i % 1000) }] }));
const jsonStrings = Buffer.from(JSON.stringify({ inputs: [{ name: 'in_bytes', shape: [16, strings / 16], datatype: 'BYTES', data: new Array<string>(strings).fill('') }] }));
const grpcFloats = grpcFrame(
  serializeModelInferRequest({ model_name: 'classifier', inputs: [{ name: 'input', datatype: 'FP32', shape: [floats / 4, 4], contents: { fp32_contents: new Array<number>(floats).fill(0.5) } }] }),
);

const postBody = async (url: string, body: Buffer) => (await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body })).status;
attacks.push({ name: `HTTP JSON, ${numbers} numbers, ${(jsonNumbers.length / 2 ** 20).toFixed(0)} MiB`, send: (http) => postBody(`${http}/v2/models/classifier/infer`, jsonNumbers) });
attacks.push({ name: `HTTP JSON, ${strings} empty BYTES strings, ${(jsonStrings.length / 2 ** 20).toFixed(0)} MiB`, send: (http) => postBody(`${http}/v2/models/bytes/infer`, jsonStrings) });
attacks.push({ name: `gRPC, ${floats} fp32_contents, ${(grpcFloats.length / 2 ** 20).toFixed(0)} MiB`, send: async (_http, grpc) => (await rawGrpcCall(grpc, MODEL_INFER_PATH, grpcFloats)).code });

const dir = await mkdtemp(path.join(tmpdir(), 'decode-attack-'));
const children = new Children();
try {
  for (const [name, bytes] of [['classifier', classifierModel()], ['bytes', identityModelOf(['BYTES'])]] as const) {
    await mkdir(path.join(dir, 'models', name, '1'), { recursive: true });
    await writeFile(path.join(dir, 'models', name, '1', 'model.onnx'), bytes);
  }
  const [httpPort, grpcPort] = [await freePort(), await freePort()];
  const http = `http://127.0.0.1:${httpPort}`;
  const grpc = `127.0.0.1:${grpcPort}`;
  const server = children.start('server', main, [], {
    MODEL_REPOSITORY: path.join(dir, 'models'),
    STATE_DIR: path.join(dir, 'state'),
    HOST: '127.0.0.1',
    HTTP_PORT: String(httpPort),
    GRPC_PORT: String(grpcPort),
    METRICS_PORT: '0',
    LOG_LEVEL: 'silent',
  });
  await waitForReady(`${http}/v2/health/ready`, server, 60_000);
  console.log(`server ${main}`);
  for (const attack of attacks) {
    let attacking = true;
    let slowestProbe = 0;
    let probes = 0;
    const probing = (async () => {
      while (attacking) {
        const started = performance.now();
        await fetch(`${http}/v2/health/live`);
        slowestProbe = Math.max(slowestProbe, performance.now() - started);
        probes++;
        await sleep(10);
      }
    })();
    let slowestAnswer = 0;
    const statuses = new Set<number>();
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        for (let round = 0; round < ROUNDS; round++) {
          const started = performance.now();
          statuses.add(await attack.send(http, grpc));
          slowestAnswer = Math.max(slowestAnswer, performance.now() - started);
        }
      }),
    );
    attacking = false;
    await probing;
    console.log(`${attack.name}: answered ${[...statuses].join(', ')}; slowest refusal ${slowestAnswer.toFixed(0)} ms; slowest live probe ${slowestProbe.toFixed(0)} ms of ${probes}`);
  }
  const health = (await (await fetch(`${http}/health`)).json()) as { details?: { event_loop?: Record<string, unknown> } };
  console.log(`server event loop over the run: ${JSON.stringify(health.details?.event_loop)}`);
} finally {
  await children.stopAll();
  await rm(dir, { recursive: true, force: true });
}
