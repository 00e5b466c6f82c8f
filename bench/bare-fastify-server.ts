/**
 * Baseline child process: a bare Fastify server (no Nest, no model) on the same route as the
 * server's infer endpoint. It parses the JSON request body like any Fastify JSON route and answers
 * a fixed JSON object — the server's own answer to the same request, passed in by the bench — so
 * the ratio against it is the cost of everything the server adds above HTTP + JSON.
 *
 * A body of Triton's binary tensor extension (application/octet-stream, with an
 * Inference-Header-Content-Length header) is received as bytes, its JSON header parsed, and answered
 * with RESPONSE_BINARY_BASE64 (the server's own binary answer) and its JSON length.
 *
 * Env: PORT, HOST (default 127.0.0.1), RESPONSE_JSON (the answer), RESPONSE_BINARY_BASE64 and
 * RESPONSE_BINARY_JSON_LENGTH (the binary answer, optional), BODY_LIMIT (bytes, optional).
 */
import { fastify } from 'fastify';

const port = Number(process.env.PORT);
const host = process.env.HOST ?? '127.0.0.1';
const responseJson = process.env.RESPONSE_JSON;
if (!Number.isInteger(port) || port <= 0 || !responseJson) {
  process.stderr.write('bare-fastify-server: PORT and RESPONSE_JSON are required\n');
  process.exit(2);
}
// An object, so Fastify serializes it per request as it does the server's answers.
const answer = JSON.parse(responseJson) as Record<string, unknown>;

const binaryAnswer = process.env.RESPONSE_BINARY_BASE64 ? Buffer.from(process.env.RESPONSE_BINARY_BASE64, 'base64') : undefined;
const binaryJsonLength = process.env.RESPONSE_BINARY_JSON_LENGTH ?? '';
const HEADER_LENGTH = 'inference-header-content-length';

const app = fastify({ logger: false, bodyLimit: Number(process.env.BODY_LIMIT ?? 64 * 1024 * 1024) });
app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

app.get('/v2/health/ready', async () => ({}));
app.post<{ Params: { model: string }; Body: { inputs?: unknown[] } | Buffer }>('/v2/models/:model/infer', async (request, reply) => {
  if (Buffer.isBuffer(request.body)) {
    // The binary extension: the JSON header parsed from the bytes, as any reader of the body must.
    const jsonLength = Number(request.headers[HEADER_LENGTH]);
    const header = JSON.parse(request.body.toString('utf8', 0, jsonLength)) as { inputs?: unknown[] };
    if (!Array.isArray(header.inputs) || !binaryAnswer) return reply.code(400).send({ error: 'inputs must be an array' });
    return reply.header('content-type', 'application/octet-stream').header(HEADER_LENGTH, binaryJsonLength).send(binaryAnswer);
  }
  // The body was parsed by Fastify's JSON parser; a minimal check keeps it from being dead work.
  if (!Array.isArray(request.body?.inputs)) return reply.code(400).send({ error: 'inputs must be an array' });
  return answer;
});

const shutdown = (): void => {
  void app.close().then(() => process.exit(0));
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

await app.listen({ port, host });
