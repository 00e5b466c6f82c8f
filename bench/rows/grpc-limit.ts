/**
 * Row 6, the gRPC limit: the server's ModelInfer on the demo classifier (raw input, as Triton's
 * clients send it) vs a bare @grpc/grpc-js server with the same .proto and loader options answering
 * the server's own answer: req/s, closed loop at BENCH_CONNECTIONS calls in flight over
 * GRPC_CHANNELS channels (connections). Target >= 0.80x. The load generator is bench/grpc-load.ts,
 * a minimal gRPC client on node:http2 (see there why not grpc-js's), in a child process of its own
 * so that its CPU is measured apart; its rates count OK answers (grpc-status 0).
 */
import type { BenchRow } from '../bench-row.js';
import { classifierGrpcRequest, MODEL_INFER, type ModelInferResponse } from '../grpc.js';
import { children, GRPC_CHANNELS, settings, startServer } from '../harness.js';
import { measureBareGrpc, measureServerGrpc, type GrpcClosedLoopRun } from '../measure.js';
import { figuresJson, int, mainThreadDemand, mainThreadText, mainThreadUsPerCall, otherProcessesCores, pct, shortfallWhy, x, type TargetRow } from '../report.js';

const TARGET = 0.8;

/** 6. gRPC limit: its row, and the problems (calls that failed) and notes of its two loads. */
function grpcTarget(server: GrpcClosedLoopRun, bare: GrpcClosedLoopRun): { row: TargetRow; problems: string[]; notes: string[] } {
  const ratio = server.load.requestsPerSecond / bare.load.requestsPerSecond;
  const cpu = server.window.cpu;
  const serverUs = mainThreadUsPerCall(server);
  const bareUs = mainThreadUsPerCall(bare);
  let why: string | undefined;
  if (ratio < TARGET && cpu && serverUs !== undefined && bareUs !== undefined) {
    const perCall = `${serverUs.toFixed(0)} µs of main-thread CPU per call vs ${bareUs.toFixed(0)} µs for bare grpc-js`;
    const generator = mainThreadDemand(cpu) >= 0.9 ? ` (load generator ${cpu.loadGenerator.toFixed(2)} cores, machine ${pct(cpu.machineBusyFraction)} busy)` : '';
    why = shortfallWhy(server.window, 'server', `${perCall}${generator}`, { unit: 'calls' });
  }
  const problems: string[] = [];
  const notes: string[] = [];
  for (const [name, load] of [['6. server gRPC', server.load], ['6. bare grpc-js', bare.load]] as const) {
    if (load.errors > 0 || load.requests === 0) problems.push(`${name}: ${load.requests} answered OK, ${load.errors} other statuses ${JSON.stringify(load.errorsByStatus)}`);
    if (load.warmupErrors > 0) notes.push(`${name}: ${int(load.warmupErrors)} calls of the warm-up did not end OK`);
  }
  // The load generator is a process of its own here, so the machine's busy time that neither it nor the server accounts for is other processes'.
  for (const [name, run] of [['6. server gRPC', server], ['6. bare grpc-js', bare]] as const) {
    const others = run.window.cpu && otherProcessesCores(run.window.cpu);
    if (others !== undefined && others >= 0.2) notes.push(`${name}: processes other than the server and the load generator took ${others.toFixed(2)} cores of the window: its figure is disturbed`);
  }
  const bareCpu = bare.window.cpu;
  if (bareCpu && mainThreadDemand(bareCpu) < 0.9 && otherProcessesCores(bareCpu) < 0.2) {
    notes.push(
      `6. bare grpc-js was not main-thread bound (${mainThreadText(bareCpu)}; load generator ${bareCpu.loadGenerator.toFixed(2)} cores, machine ` +
        `${pct(bareCpu.machineBusyFraction)} busy): it could answer more than it was asked, which flatters the ratio`,
    );
  }
  const row: TargetRow = {
    id: 6,
    target: 'gRPC limit, req/s (classifier)',
    measured: `server ${int(server.load.requestsPerSecond)} req/s`,
    baseline: `bare grpc-js ${int(bare.load.requestsPerSecond)} req/s`,
    value: x(ratio),
    required: `>= ${x(TARGET)}`,
    met: ratio >= TARGET,
    why,
  };
  return { row, problems, notes };
}

const grpcLoadText = (): string =>
  `gRPC (6) in its own process (bench/grpc-load.ts), ${settings.connections} calls in flight over ${GRPC_CHANNELS} channels, ` +
  `raw classifier input, request serialized once (${MODEL_INFER.requestSerialize(classifierGrpcRequest()).length} bytes)`;

function grpcScenariosJson(server: GrpcClosedLoopRun, bare: GrpcClosedLoopRun): Record<string, unknown> {
  return {
    grpcServer: { ...server.load, cpu: server.window.cpu, stats: server.window.stats, runs: server.window.figures && figuresJson(server.window.figures) },
    bareGrpc: { ...bare.load, cpu: bare.window.cpu },
  };
}


export const grpcLimit: BenchRow = {
  name: 'grpc',
  loads: 2,
  async run(bench) {
    const demo = await startServer('server-demo-grpc', bench.demoRepository);
    let server: GrpcClosedLoopRun;
    let answer: ModelInferResponse;
    try {
      ({ run: server, answer } = await measureServerGrpc(demo));
    } finally {
      await children.stop(demo.child);
    }
    const bare = await measureBareGrpc(answer);
    const { row, problems, notes } = grpcTarget(server, bare);
    return {
      rows: [row],
      problems,
      notes,
      loadText: grpcLoadText(),
      settings: {
        requestBytes: { classifierGrpc: MODEL_INFER.requestSerialize(classifierGrpcRequest()).length },
        classifierGrpcAnswerBytes: MODEL_INFER.responseSerialize(answer).length,
        grpcChannels: GRPC_CHANNELS,
      },
      figures: { grpcRatio: server.load.requestsPerSecond / bare.load.requestsPerSecond },
      scenarios: grpcScenariosJson(server, bare),
      runs: [
        ['server', server],
        ['bare grpc-js', bare],
      ],
    };
  },
};
