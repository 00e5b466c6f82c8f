import { type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import Fastify, { type FastifyListenOptions, type FastifyReply, type FastifyRequest } from 'fastify';
import pino from 'pino';
import { pinoHttp } from 'pino-http';
import { requestedVersion } from '../../domain/registry/model-name.js';
import type { CancellationSignal } from '../../domain/inference/dynamic-batch-scheduler.js';
import type { InferenceResponse } from '../../domain/inference/inference-request.js';
import { AppConfig } from '../config/app-config.js';
import { accessLogOptions, annotateAccessLog } from '../http/access-log.js';
import { encodeHttpInferResponse, INFERENCE_HEADER_CONTENT_LENGTH, readHttpInferRequestYielding } from '../http/binary-tensor.codec.js';
import { clientDisconnect } from '../http/client-disconnect.js';
import { installContentCoding } from '../http/content-coding.js';
import { BINARY_TENSOR_BODY } from '../http/request-body-parsers.js';
import { headerGetter, headerRecord, parseTimeoutHeader } from '../http/route-params.js';
import { replyInferResponse } from '../http/infer-reply.js';
import { noteRouteTemplate, noteRouteTemplates, whenAnswered } from '../http/answer-counting.js';
import { servingFastifyOptions } from '../http/serving-fastify-options.js';
import { ServerTls } from '../tls/server-tls.js';
import { sendHttpError, writeDomainError } from '../transport/error-response.filter.js';
import { DomainError } from '../../domain/shared/domain-error.js';
import { INFER_ROUTE, INFER_URL, modelOfInferUrl, VERSIONED_INFER_ROUTE } from '../http/infer-url.js';
import { RefusalView } from './refusal-board.js';
import { IngressSampling } from '../tracing/ingress-sampling.js';
import type { SamplerSettings } from '../tracing/sampler.js';
import { forwardToMain } from './forward-to-main.js';
import { HAND_OVER, NO_SHARED_MEMORY } from './hand-over.js';
import { serveGrpc } from './ingress-grpc.js';
import {
  deserializeError,
  ownedTensors,
  serializeError,
  type AnsweredRow,
  type DeclaredRequest,
  type ForwardedInfer,
  type IngressTransport,
  type FromIngress,
  type RateLimitState,
  type ToIngress,
} from './ingress-messages.js';

/** What the main thread gives an ingress thread at its start. */
export interface IngressThreadData {
  /** The validated configuration's values. */
  readonly config: Record<string, unknown>;
  /** The main thread's own HTTP server, on a private Unix socket: where everything this thread does not serve goes. */
  readonly mainHttpSocket: string;
  /** The main thread's own gRPC server, on a private Unix socket: where every method but ModelInfer goes. */
  readonly mainGrpcSocket: string;
  /** The ports to share (HTTP_PORT and GRPC_PORT, or those the first thread was given when they are 0). */
  readonly httpPort: number;
  readonly grpcPort: number;
  /** HTTP_MAX_CONNECTIONS and GRPC_MAX_CONNECTIONS, held by every thread together. */
  readonly maxConnections: number;
  readonly maxGrpcConnections: number;
  /** The open connections of every thread: HTTP at 0, gRPC at 1. */
  readonly connectionCounts: SharedArrayBuffer;
  /** The refusal board's flags (refusal-board.ts). */
  readonly refusalBoard: SharedArrayBuffer;
  /** With tracing on, the main thread's sampler settings: a request to be traced is forwarded to the main thread, which traces it. */
  readonly sampling?: SamplerSettings;
}

/** How often what the thread counted goes to the main thread (and at once when /metrics is scraped). */
const REPORT_INTERVAL_MS = 250;

/**
 * A body larger than this is judged by the main thread on what it declares before its elements are
 * decoded (a round trip), as the main thread's controllers judge every body: a wrong one then costs
 * a scan, not a decode. A smaller one is decoded first (cheap), and judged only if it is refused.
 */
const JUDGE_BEFORE_DECODING_BYTES = 64 * 1024;

/** What the main thread answers a forwarded request: its answer, or 'hand over' (it serves the request itself). */
type Answer = { response: InferenceResponse; rateLimit?: RateLimitState } | 'hand over';

/**
 * This thread's end of its channel to the main thread, which owns every version's scheduler: the
 * requests it runs, the judgements it makes, the answers this thread counted, and its close.
 * (The thread itself, below: HTTP and gRPC on the shared ports, each infer request read, decoded and
 * handed over as a data-only command, its answer encoded; every other request forwarded as it came.)
 */
class IngressThread {
  /** Requests and judgements awaiting the main thread's word; a judgement 'kept' resolves with nothing. */
  private readonly pending = new Map<number, { resolve: (answer?: Answer) => void; reject: (error: Error) => void }>();
  private nextId = 1;
  private answered: AnsweredRow[] = [];
  private readonly reporter: NodeJS.Timeout;
  /** Whether a request to a URL is refused before its body is read (a full queue), as the main thread's board says. */
  private readonly refusals: RefusalView;

  constructor(private readonly main: MessagePort, refusalBoard: SharedArrayBuffer) {
    this.refusals = new RefusalView(refusalBoard, (url) => this.send({ kind: 'watch', url }));
    main.on('message', (message: ToIngress) => this.onMessage(message));
    this.reporter = setInterval(() => this.report(), REPORT_INTERVAL_MS);
    this.reporter.unref();
  }

  /** Runs a decoded request on the main thread: its answer, or its error as the main thread threw it. */
  run(transport: IngressTransport, command: ForwardedInfer['command'], address: string, signal: CancellationSignal): Promise<Answer> {
    const id = this.nextId++;
    const { tensors, transfer } = ownedTensors(command.request.inputs);
    const message: ForwardedInfer = { kind: 'infer', id, transport, address, command: { ...command, request: { ...command.request, inputs: tensors } } };
    return new Promise((resolve, reject) => {
      const stop = signal.onAbort(() => this.send({ kind: 'cancel', id, deadlinePassed: signal.deadlinePassed }));
      this.pending.set(id, {
        resolve: (answer) => (stop(), resolve(answer!)),
        reject: (error) => (stop(), reject(error)),
      });
      this.main.postMessage(message, transfer);
    });
  }

  countAnswer(row: AnsweredRow): void {
    this.answered.push(row);
  }

  /**
   * The main thread's judgement of a request (JudgeRequest): the refusal to answer, or undefined
   * when nothing is wrong. `error`, the thread's own refusal, stands unless the judgement finds
   * more; what it answers is marked judged.
   */
  judge(model: string, declared: DeclaredRequest | undefined, error?: unknown, counted = true): Promise<Error | undefined> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, {
        resolve: () => {
          if (typeof error === 'object' && error !== null) this.judged.add(error);
          resolve(error as Error | undefined);
        },
        reject: (judged) => resolve(judged),
      });
      this.send({ kind: 'judge', id, model, declared: declared && declaredOnly(declared), error: error === undefined ? undefined : serializeError(error), counted });
    });
  }

  /**
   * Decodes a request read up to its elements, judged by the main thread first when it is larger
   * than JUDGE_BEFORE_DECODING_BYTES (its refusal is thrown, never decoded).
   */
  async decodeJudged<T>(model: string, declared: DeclaredRequest, bytes: number, decode: () => T): Promise<T> {
    if (bytes > JUDGE_BEFORE_DECODING_BYTES) {
      const refusal = await this.judge(model, declared);
      if (refusal) throw refusal;
    }
    return decode();
  }

  /** The refusal of a request to this URL's model and version because its queue is full (the board's), marked judged; counted. */
  queueRefusal(model: string, version: string | undefined): Error | undefined {
    const refusal = this.refusals.refusal(model, version);
    if (refusal) this.judged.add(refusal);
    return refusal;
  }

  /** What to answer for an error of a request: the main thread's judgement of it, unless it was judged already. */
  async refusalOf(model: string, declared: DeclaredRequest | undefined, error: unknown): Promise<Error> {
    return this.wasJudged(error) ? (error as Error) : ((await this.judge(model, declared, error)) ?? (error as Error));
  }

  /** Errors the main thread already judged (its failures, and refusals it answered): answered as they are. */
  private readonly judged = new WeakSet<object>();

  wasJudged(error: unknown): boolean {
    return typeof error === 'object' && error !== null && this.judged.has(error);
  }

  private onMessage(message: ToIngress): void {
    switch (message.kind) {
      case 'answer':
        this.pending.get(message.id)?.resolve({ response: message.response, rateLimit: message.rateLimit });
        this.pending.delete(message.id);
        return;
      case 'failure': {
        const error = deserializeError(message.error);
        this.judged.add(error);
        this.pending.get(message.id)?.reject(error);
        this.pending.delete(message.id);
        return;
      }
      case 'hand-over':
        this.pending.get(message.id)?.resolve('hand over');
        this.pending.delete(message.id);
        return;
      case 'kept':
        this.pending.get(message.id)?.resolve();
        this.pending.delete(message.id);
        return;
      case 'flush':
        this.report(message.id);
        return;
      case 'close':
        void this.close();
        return;
      case 'watched':
      case 'refusal':
        this.refusals.onMessage(message);
        return;
    }
  }

  private report(flush?: number): void {
    const refused = this.refusals.takeRefused();
    if (flush === undefined && this.answered.length === 0 && refused.length === 0) return;
    this.send({ kind: 'report', answered: this.answered, refused, flush });
    this.answered = [];
  }

  private send(message: FromIngress): void {
    this.main.postMessage(message);
  }

  closing?: () => Promise<void>;

  private async close(): Promise<void> {
    await this.closing?.();
    clearInterval(this.reporter);
    this.report();
    this.send({ kind: 'closed' });
  }
}

async function start(): Promise<void> {
  const data = workerData as IngressThreadData;
  const config = new AppConfig(data.config as unknown as ConstructorParameters<typeof AppConfig>[0]);
  const tls = await ServerTls.start(config);
  const thread = new IngressThread(parentPort!, data.refusalBoard);
  const sampling = data.sampling && new IngressSampling(data.sampling);
  // Written straight to the process's stdout descriptor, as the main thread's lines are (never through the main thread).
  const destination = pino.destination({ fd: 1, sync: false });
  const accessLog = pinoHttp(accessLogOptions(config), destination);
  const route =
    (fastify: RequestListener): RequestListener =>
    (req: IncomingMessage, res: ServerResponse) => {
      const infer = req.method === 'POST' ? INFER_URL.exec(req.url ?? '') : null;
      const traced = infer && sampling?.decide(headerGetter(req.headers));
      if (!infer || (traced && traced !== 'serve')) {
        forwardToMain(data.mainHttpSocket, req, res, { sampled: traced === 'forward sampled' });
        return;
      }
      accessLog(req, res);
      whenAnswered(req, res, (method, routeTemplate, status, elapsedMs) => thread.countAnswer([method, routeTemplate, status, elapsedMs]));
      // A full queue refuses before the body is read, as the main thread's middleware does (counted with the next report).
      const model = modelOfInferUrl(infer);
      const refusal = model === undefined ? undefined : thread.queueRefusal(model, infer[2]);
      if (refusal instanceof DomainError) {
        noteRouteTemplate(req, infer[2] === undefined ? INFER_ROUTE : VERSIONED_INFER_ROUTE);
        annotateAccessLog(req, { model, version: infer[2] });
        writeDomainError(res, refusal);
        return;
      }
      fastify(req, res);
    };
  const counts = new Int32Array(data.connectionCounts);
  const fastify = Fastify(servingFastifyOptions(config, tls, { maxConnections: data.maxConnections, sharedCount: { counts, slot: 0 } }, route));
  noteRouteTemplates(fastify);
  const errorLimits = { maxRequestBytes: config.MAX_REQUEST_BYTES };
  // What Fastify refuses before the route (a body it cannot read) is judged on the model first, as the main thread does before reading.
  fastify.setErrorHandler(async (error, request, reply) => {
    const model = (request.params as { model?: string } | undefined)?.model;
    const answer = model !== undefined && !thread.wasJudged(error) ? await thread.judge(model, undefined, error, false) : error;
    sendHttpError(reply, request.url, answer, errorLimits);
  });
  // Inference bodies are bytes whatever their content type, as on the main thread (request-body-parsers.ts).
  fastify.removeAllContentTypeParsers();
  fastify.addHook('onRequest', (request, _reply, done) => {
    request.headers['content-type'] = 'application/octet-stream';
    done();
  });
  fastify.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  installContentCoding(fastify, { maxRequestBytes: config.MAX_REQUEST_BYTES });

  const infer = async (request: FastifyRequest, reply: FastifyReply): Promise<string | Buffer | undefined> => {
    const { model, version } = request.params as { model: string; version?: string };
    annotateAccessLog(request.raw, { model, version });
    let command: ForwardedInfer['command'];
    let decoded;
    let declared: DeclaredRequest | undefined;
    try {
      const requested = requestedVersion(version);
      const envelope = await readHttpInferRequestYielding(request.body, request.headers[INFERENCE_HEADER_CONTENT_LENGTH], config.MAX_JSON_DEPTH);
      declared = { version: requested, inputs: envelope.inputs, requestedOutputs: envelope.requestedOutputs };
      decoded = await thread.decodeJudged(model, declared, (request.body as Buffer).length, () => envelope.decode(NO_SHARED_MEMORY));
      if (decoded.sharedMemoryOutputs.size > 0) throw HAND_OVER;
      command = { modelName: model, version: requested, request: decoded.request, timeoutMicros: parseTimeoutHeader(request.headers), headers: headerRecord(request.headers) };
    } catch (error) {
      if (error !== HAND_OVER) throw await thread.refusalOf(model, declared, error);
      // Shared memory is the main thread's: the request goes there whole, as it came (decompressed).
      void reply.hijack();
      forwardToMain(data.mainHttpSocket, request.raw, reply.raw, { body: request.body as Buffer });
      return undefined;
    }
    const answer = await thread.run('http', command, request.raw.socket.remoteAddress ?? '', clientDisconnect(reply.raw));
    if (answer === 'hand over') throw new Error('the main thread handed back an HTTP infer request');
    const { response, rateLimit } = answer;
    if (rateLimit) {
      void reply.header('x-ratelimit-limit', rateLimit.limit);
      void reply.header('x-ratelimit-remaining', rateLimit.remaining);
      void reply.header('x-ratelimit-reset', rateLimit.reset);
    }
    return replyInferResponse(reply, response, () => encodeHttpInferResponse(response, decoded.binaryOutput));
  };
  const options = { config: { [BINARY_TENSOR_BODY]: true } };
  fastify.post(INFER_ROUTE, options, infer);
  fastify.post(VERSIONED_INFER_ROUTE, options, infer);

  // reusePort (Linux): every thread binds the port; the kernel spreads new connections over them.
  await fastify.listen({ port: data.httpPort, host: config.HOST, reusePort: true } as FastifyListenOptions);
  tls.serve(fastify.server);
  const grpc = await serveGrpc(
    config,
    tls,
    { port: data.grpcPort, mainGrpcSocket: data.mainGrpcSocket, maxConnections: data.maxGrpcConnections, sharedCount: { counts, slot: 1 }, sampling },
    thread,
    pino({ level: config.LOG_LEVEL }, destination).child({ context: 'gRPC' }),
  );
  thread.closing = async () => {
    await Promise.all([fastify.close(), grpc.close()]);
    tls.onApplicationShutdown();
  };
  const address = fastify.server.address();
  parentPort!.postMessage({ kind: 'listening', httpPort: typeof address === 'object' && address ? address.port : data.httpPort, grpcPort: grpc.port } satisfies FromIngress);
}

await start();

/** What is judged of a declared request, as plain data (a gRPC input's header also holds where its contents lie). */
function declaredOnly({ version, inputs, requestedOutputs }: DeclaredRequest): DeclaredRequest {
  return { version, inputs: inputs.map(({ name, datatype, shape, elementCount }) => ({ name, datatype, shape, elementCount })), requestedOutputs };
}
