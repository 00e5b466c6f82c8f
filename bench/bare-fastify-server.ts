/**
 * Baseline child process: a bare Fastify server (no Nest, no model) on the same route as the
 * server's infer endpoint. It parses the JSON request body like any Fastify JSON route and answers
 * a fixed JSON object — the server's own answer to the same request, passed in by the bench — so
 * the ratio against it is the cost of everything the server adds above HTTP + JSON.
 *
 * Env: PORT, HOST (default 127.0.0.1), RESPONSE_JSON (the answer), BODY_LIMIT (bytes, optional).
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

const app = fastify({ logger: false, bodyLimit: Number(process.env.BODY_LIMIT ?? 64 * 1024 * 1024) });

app.get('/v2/health/ready', async () => ({}));
app.post<{ Params: { model: string }; Body: { inputs?: unknown[] } }>('/v2/models/:model/infer', async (request, reply) => {
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
