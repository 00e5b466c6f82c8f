/**
 * Child process of target 7: a stand-in for an OpenTelemetry collector's OTLP/HTTP trace receiver,
 * so that the server's traced run really exports. It accepts `POST /v1/traces` in either OTLP/HTTP
 * encoding (JSON, which @opentelemetry/exporter-trace-otlp-http sends, or protobuf), gzipped or
 * not, reads the whole body, counts the export requests, their bytes (as received) and the spans
 * in them (resourceSpans[].scopeSpans[].spans[]), and answers 200 with an empty body (a full
 * success in OTLP) of the request's content type; a body it cannot read is answered 400 and
 * counted as malformed. It keeps nothing but the counts.
 *
 * `GET /counts` answers the counts so far as JSON (the bench reads them around its measured
 * window, and polls it until the stub is up); on SIGTERM or SIGINT it closes, prints the final
 * counts as one JSON line on stdout and exits 0:
 * { requests, bytes, spans, malformed, json, protobuf } (json/protobuf: requests of each encoding).
 *
 * Env: PORT, HOST (default 127.0.0.1).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { gunzipSync } from 'node:zlib';

const port = Number(process.env.PORT);
const host = process.env.HOST ?? '127.0.0.1';
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('otlp-collector-stub: PORT is required\n');
  process.exit(2);
}

const counts = { requests: 0, bytes: 0, spans: 0, malformed: 0, json: 0, protobuf: 0 };

interface OtlpJson {
  resourceSpans?: { scopeSpans?: { spans?: unknown[] }[] }[];
}

function spansInJson(body: Buffer): number {
  const request = JSON.parse(body.toString('utf8')) as OtlpJson;
  let spans = 0;
  for (const resource of request.resourceSpans ?? []) for (const scope of resource.scopeSpans ?? []) spans += scope.spans?.length ?? 0;
  return spans;
}

/**
 * Spans in an ExportTraceServiceRequest, walking the protobuf wire format without decoding the
 * spans: request.resource_spans = 1 -> ResourceSpans.scope_spans = 2 -> ScopeSpans.spans = 2.
 */
function spansInProtobuf(body: Buffer): number {
  let spans = 0;
  for (const resource of lengthDelimited(body, 0, body.length, 1)) {
    for (const scope of lengthDelimited(body, resource.start, resource.end, 2)) {
      for (const _span of lengthDelimited(body, scope.start, scope.end, 2)) spans++;
    }
  }
  return spans;
}

/** The byte ranges of the length-delimited fields numbered `field` in the message at [start, end). */
function* lengthDelimited(buf: Buffer, start: number, end: number, field: number): Generator<{ start: number; end: number }> {
  let at = start;
  const varint = (): number => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      if (at >= end || shift > 63) throw new Error('truncated varint');
      const byte = buf[at++]!;
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
    }
  };
  while (at < end) {
    const tag = varint();
    const wireType = tag % 8;
    if (wireType === 0) varint();
    else if (wireType === 1) at += 8;
    else if (wireType === 5) at += 4;
    else if (wireType === 2) {
      const length = varint();
      if (at + length > end) throw new Error('truncated field');
      if (Math.floor(tag / 8) === field) yield { start: at, end: at + length };
      at += length;
    } else throw new Error(`unsupported wire type ${wireType}`);
  }
  if (at !== end) throw new Error('truncated message');
}

function exported(req: IncomingMessage, res: ServerResponse, chunks: Buffer[], received: number): void {
  counts.requests++;
  counts.bytes += received;
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  try {
    let body = Buffer.concat(chunks, received);
    if ((req.headers['content-encoding'] ?? '').toLowerCase() === 'gzip') body = gunzipSync(body);
    if (type === 'application/json') {
      counts.spans += spansInJson(body);
      counts.json++;
    } else if (type === 'application/x-protobuf') {
      counts.spans += spansInProtobuf(body);
      counts.protobuf++;
    } else throw new Error(`content-type ${type || '(none)'}`);
  } catch (error) {
    counts.malformed++;
    res.writeHead(400, { 'content-type': 'text/plain' }).end(`malformed export: ${(error as Error).message}\n`);
    return;
  }
  res.writeHead(200, { 'content-type': type, 'content-length': 0 }).end();
}

const server = createServer((req, res) => {
  const url = (req.url ?? '').split('?')[0];
  if (req.method === 'POST' && url === '/v1/traces') {
    const chunks: Buffer[] = [];
    let received = 0;
    req.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
    });
    req.on('end', () => exported(req, res, chunks, received));
    return;
  }
  if (req.method === 'GET' && url === '/counts') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(counts));
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' }).end('POST /v1/traces or GET /counts\n');
});

let closing = false;
const shutdown = (): void => {
  if (closing) return;
  closing = true;
  server.closeIdleConnections();
  server.close(() => {
    process.stdout.write(`${JSON.stringify(counts)}\n`, () => process.exit(0));
  });
  server.closeAllConnections();
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

server.listen(port, host);
