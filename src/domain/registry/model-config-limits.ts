import { DomainError } from '../shared/domain-error.js';
import { TYPED_ARRAY_OF, type Datatype } from '../shared/datatype.js';
import { formatShape } from '../inference/tensor.js';
import type { ConfiguredTensor, DeclaredModelConfig } from './model-config.js';

/**
 * The most one model's configuration may ask of the host, whoever wrote it (a config.json in the
 * repository, a repository load's override, the admin API): an operator's typo must not start
 * thousands of threads or allocate gigabytes. A configuration past a limit is refused with
 * REGISTRY.INVALID_CONFIG naming the field and the limit, before anything of it is built.
 */
export class ModelConfigLimits {
  /** The most threads one version's instances may compute with: instances × intra-op threads (MAX_MODEL_THREADS). */
  readonly maxThreads: number;
  /** The CPU quota of the process: what the default intra-op threads share between the instances. */
  readonly cpuQuota: number;
  /** The largest request (MAX_REQUEST_BYTES): no input may need more for one row. */
  readonly maxRequestBytes: number;
  /** The largest answer (MAX_RESPONSE_BYTES): no output may need more for one row. */
  readonly maxResponseBytes: number;

  constructor(limits: { maxThreads: number; cpuQuota: number; maxRequestBytes: number; maxResponseBytes: number }) {
    this.maxThreads = limits.maxThreads;
    this.cpuQuota = limits.cpuQuota;
    this.maxRequestBytes = limits.maxRequestBytes;
    this.maxResponseBytes = limits.maxResponseBytes;
  }

  /** Throws REGISTRY.INVALID_CONFIG naming the first field past a limit. */
  check(declared: DeclaredModelConfig): void {
    this.checkThreads(declared);
    for (const tensor of declared.inputs ?? []) this.checkDims('input', tensor, this.maxRequestBytes, 'MAX_REQUEST_BYTES');
    for (const tensor of declared.outputs ?? []) this.checkDims('output', tensor, this.maxResponseBytes, 'MAX_RESPONSE_BYTES');
  }

  private checkThreads(declared: DeclaredModelConfig): void {
    const bound = `the ${this.maxThreads} threads a model may use (MAX_MODEL_THREADS; by default twice the CPU quota of ${this.cpuQuota})`;
    const instances = declared.instanceCount ?? 1;
    if (instances > this.maxThreads) throw invalid(`instance_group.count ${instances} is more than ${bound}`);
    if (declared.intraOpThreads !== undefined && declared.intraOpThreads > this.maxThreads) {
      throw invalid(`parameters.intra_op_thread_count ${declared.intraOpThreads} is more than ${bound}`);
    }
    if (declared.interOpThreads !== undefined && declared.interOpThreads > this.maxThreads) {
      throw invalid(`parameters.inter_op_thread_count ${declared.interOpThreads} is more than ${bound}`);
    }
    const intraOp = declared.intraOpThreads ?? defaultIntraOpThreads(this.cpuQuota, instances);
    if (instances * intraOp > this.maxThreads) {
      throw invalid(`instance_group.count ${instances} × parameters.intra_op_thread_count ${intraOp} = ${instances * intraOp} threads, more than ${bound}`);
    }
  }

  /**
   * One row of the tensor (a variable dim counted as 1) must fit the request (or answer) limit:
   * each dim, and their product, in elements of the datatype's size (a BYTES element counts the
   * 4 bytes of its length in the raw form). A tensor past it could never be sent or answered.
   */
  private checkDims(kind: 'input' | 'output', tensor: ConfiguredTensor, maxBytes: number, variable: string): void {
    const elementBytes = elementBytesOf(tensor.datatype);
    const maxElements = Math.floor(maxBytes / elementBytes);
    const where = `${kind} '${tensor.name}' dims ${formatShape(tensor.dims)}`;
    const bound = `the ${maxElements} ${tensor.datatype} elements (of ${elementBytes} bytes) that ${variable} (${maxBytes} bytes) holds`;
    let elements = 1;
    for (const dim of tensor.dims) {
      const count = dim === -1 ? 1 : dim;
      if (count > maxElements) throw invalid(`${where}: dim ${dim} is more than ${bound}`);
      elements *= count;
      if (elements > maxElements) throw invalid(`${where}: one row holds more than ${bound}`);
    }
  }
}

/** Intra-op threads of an instance when the configuration names none: the CPU quota shared between the instances, at least one each. */
export function defaultIntraOpThreads(cpuQuota: number, instanceCount: number): number {
  return Math.max(1, Math.floor(cpuQuota / instanceCount));
}

function elementBytesOf(datatype: Datatype): number {
  return datatype === 'BYTES' ? 4 : TYPED_ARRAY_OF[datatype].BYTES_PER_ELEMENT;
}

function invalid(message: string): DomainError {
  return new DomainError('REGISTRY.INVALID_CONFIG', message);
}
