/**
 * Requests as NVIDIA's Python client (tritonclient.http) puts them on the wire, and its reading of
 * the answers, for the tests that replay Triton's example programs: a body of the JSON header
 * followed by the raw bytes of every binary input, `Inference-Header-Content-Length` only when
 * binary bytes follow, and no content type at all (geventhttpclient sends none; Node's fetch sends
 * none for a Buffer body either). Answers are split the way InferResult splits them: the JSON
 * header, then each binary output's `binary_data_size` bytes in output order.
 */

export interface TritonInput {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
  /** JSON data (`set_data_from_numpy(..., binary_data=False)`). */
  readonly data?: readonly unknown[];
  /** Raw little-endian bytes (`binary_data=True`, the client's default). */
  readonly binary?: Buffer;
}

export interface TritonOutput {
  readonly name: string;
  /** `InferRequestedOutput(name, binary_data=...)`: the client's default is true. */
  readonly binaryData?: boolean;
  /** `class_count`: Triton's classification extension. */
  readonly classCount?: number;
}

export interface TritonInferRequest {
  readonly id?: string;
  readonly inputs: readonly TritonInput[];
  /** Omitted: the client asks for every output in binary (`binary_data_output: true`). */
  readonly outputs?: readonly TritonOutput[];
  readonly parameters?: Readonly<Record<string, unknown>>;
}

/** The JSON header and the body bytes tritonclient.http sends for `infer(...)`. */
export function tritonInferBody(request: TritonInferRequest): { body: Buffer; headers: Record<string, string> } {
  const parameters: Record<string, unknown> = { ...request.parameters };
  const header: Record<string, unknown> = {};
  if (request.id !== undefined) header.id = request.id;
  header.inputs = request.inputs.map((input) => ({
    name: input.name,
    shape: input.shape,
    datatype: input.datatype,
    ...(input.binary !== undefined ? { parameters: { binary_data_size: input.binary.length } } : { data: input.data }),
  }));
  if (request.outputs) {
    header.outputs = request.outputs.map((output) => ({
      name: output.name,
      parameters: { ...(output.classCount ? { classification: output.classCount } : {}), binary_data: output.binaryData ?? true },
    }));
  } else {
    parameters.binary_data_output = true;
  }
  if (Object.keys(parameters).length > 0) header.parameters = parameters;
  const json = Buffer.from(JSON.stringify(header));
  const binaries = request.inputs.flatMap((input) => (input.binary ? [input.binary] : []));
  if (binaries.length === 0) return { body: json, headers: {} };
  return { body: Buffer.concat([json, ...binaries]), headers: { 'inference-header-content-length': String(json.length) } };
}

export interface TritonAnswer {
  readonly status: number;
  readonly headers: Headers;
  /** The JSON header of the answer (the whole body when it has no binary part). */
  readonly json: any;
  /** Each binary output's bytes, by output name. */
  readonly binary: ReadonlyMap<string, Buffer>;
}

/** Splits an answer body as InferResult does. */
export function readTritonAnswer(status: number, headers: Headers, body: Buffer): TritonAnswer {
  const headerLength = headers.get('inference-header-content-length');
  const jsonLength = headerLength === null ? body.length : Number(headerLength);
  const text = body.subarray(0, jsonLength).toString('utf8');
  const json = text ? JSON.parse(text) : undefined;
  const binary = new Map<string, Buffer>();
  let offset = jsonLength;
  for (const output of json?.outputs ?? []) {
    const size = output.parameters?.binary_data_size;
    if (size === undefined) continue;
    binary.set(output.name, body.subarray(offset, offset + size));
    offset += size;
  }
  return { status, headers, json, binary };
}

/** POSTs `body` (a Buffer, so no content type is added) and reads the answer as tritonclient does. */
export async function postTriton(url: string, body: Buffer, headers: Record<string, string> = {}): Promise<TritonAnswer> {
  const response = await fetch(url, { method: 'POST', headers, body });
  return readTritonAnswer(response.status, response.headers, Buffer.from(await response.arrayBuffer()));
}

/** `InferenceServerClient.infer(model, inputs, outputs=..., query_params=..., headers=...)`. */
export async function tritonInfer(
  baseUrl: string,
  model: string,
  request: TritonInferRequest,
  options: { readonly query?: Readonly<Record<string, string | number>>; readonly headers?: Readonly<Record<string, string>>; readonly version?: string } = {},
): Promise<TritonAnswer> {
  const { body, headers } = tritonInferBody(request);
  const path = options.version ? `/v2/models/${encodeURIComponent(model)}/versions/${options.version}/infer` : `/v2/models/${encodeURIComponent(model)}/infer`;
  const query = options.query ? `?${new URLSearchParams(Object.entries(options.query).map(([k, v]): [string, string] => [k, String(v)]))}` : '';
  return postTriton(`${baseUrl}${path}${query}`, body, { ...options.headers, ...headers });
}

/** An output's elements, from its binary bytes or its JSON data. */
export function tritonOutput(answer: TritonAnswer, name: string): { datatype: string; shape: number[]; values: unknown[]; form: 'binary' | 'json' } {
  const output = answer.json.outputs.find((o: { name: string }) => o.name === name);
  if (!output) throw new Error(`no output '${name}' in ${JSON.stringify(answer.json)}`);
  const bytes = answer.binary.get(name);
  if (bytes === undefined) return { datatype: output.datatype, shape: output.shape, values: output.data, form: 'json' };
  return { datatype: output.datatype, shape: output.shape, values: decodeBinary(output.datatype, bytes), form: 'binary' };
}

function decodeBinary(datatype: string, bytes: Buffer): unknown[] {
  const copy = new Uint8Array(bytes).buffer;
  switch (datatype) {
    case 'INT32':
      return Array.from(new Int32Array(copy));
    case 'INT8':
      return Array.from(new Int8Array(copy));
    case 'FP32':
      return Array.from(new Float32Array(copy));
    case 'BYTES': {
      const elements: string[] = [];
      for (let offset = 0; offset < bytes.length; ) {
        const length = bytes.readUInt32LE(offset);
        elements.push(bytes.subarray(offset + 4, offset + 4 + length).toString('latin1'));
        offset += 4 + length;
      }
      return elements;
    }
    default:
      throw new Error(`no binary decoding for ${datatype} in this helper`);
  }
}

/** Little-endian INT32 bytes of `values`. */
export function int32Bytes(values: readonly number[]): Buffer {
  return Buffer.from(Int32Array.from(values).buffer);
}

/** BYTES elements in Triton's binary form: each a 4-byte little-endian length, then its bytes (latin1: any byte). */
export function bytesElements(elements: readonly string[]): Buffer {
  return Buffer.concat(
    elements.flatMap((element) => {
      const bytes = Buffer.from(element, 'latin1');
      const length = Buffer.alloc(4);
      length.writeUInt32LE(bytes.length);
      return [length, bytes];
    }),
  );
}
