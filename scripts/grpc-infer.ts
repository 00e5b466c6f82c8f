/**
 * A minimal gRPC client of the server, built from its .proto like any KServe V2 / Triton client:
 * it asks the server's metadata, then sends two rows to the demo classifier with raw (little-endian)
 * tensor contents and prints the decoded answer.
 *
 *   node .build/scripts/grpc-infer.js [host:port]        (default 127.0.0.1:8001)
 */
import { credentials, loadPackageDefinition, Metadata, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { INFERENCE_PROTO_FILE, PROTO_LOADER_OPTIONS } from '../src/infra/grpc/grpc-options.js';

type Callback = (error: ServiceError | null, response: any) => void;
type UnaryMethod = (request: object, metadata: Metadata, options: { deadline: number }, callback: Callback) => void;

const address = process.argv[2] ?? '127.0.0.1:8001';
const { inference } = loadPackageDefinition(loadSync(INFERENCE_PROTO_FILE, PROTO_LOADER_OPTIONS)) as any;
const client = new inference.GRPCInferenceService(address, credentials.createInsecure(), {
  // Real tensors outgrow the usual 4 MiB default; the server accepts up to MAX_REQUEST_BYTES.
  'grpc.max_send_message_length': 64 * 1024 * 1024,
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
});

function call(method: string, request: object): Promise<any> {
  const deadline = Date.now() + 5000;
  return new Promise((resolve, reject) =>
    (client[method] as UnaryMethod).call(client, request, new Metadata(), { deadline }, (error, response) => (error ? reject(error) : resolve(response))),
  );
}

try {
  const metadata = await call('ServerMetadata', {});
  console.log(`server ${metadata.name} ${metadata.version}, extensions: ${metadata.extensions.join(', ')}`);

  const rows = Float32Array.of(5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3);
  const response = await call('ModelInfer', {
    model_name: 'classifier',
    id: 'example-1',
    inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 4] }],
    raw_input_contents: [Buffer.from(rows.buffer)],
  });
  // Raw outputs come back in output order; copy each into an aligned typed array.
  const decoded = response.outputs.map((output: { name: string; datatype: string; shape: string[] }, i: number) => {
    const bytes: Buffer = response.raw_output_contents[i];
    const aligned = new Uint8Array(bytes).buffer;
    const data = output.datatype === 'INT64' ? Array.from(new BigInt64Array(aligned), String) : Array.from(new Float32Array(aligned));
    return { name: output.name, datatype: output.datatype, shape: output.shape.map(Number), data };
  });
  console.log(JSON.stringify({ model_name: response.model_name, model_version: response.model_version, id: response.id, outputs: decoded }));
} catch (error) {
  const failure = error as ServiceError;
  console.error(`gRPC call failed: ${failure.code ?? ''} ${failure.details ?? failure.message}`);
  process.exitCode = 1;
} finally {
  client.close();
}
