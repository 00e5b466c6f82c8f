import type { PackageDefinition } from '@grpc/proto-loader';

const MALFORMED = Symbol('malformed request');

/** An inference request whose bytes protobuf could not decode: no fields, and why. */
interface MalformedRequest {
  readonly inputs: [];
  readonly outputs: [];
  readonly raw_input_contents: [];
  readonly [MALFORMED]: string;
}

/**
 * Makes the listed methods of a service take requests whose bytes are not a valid protobuf message
 * instead of failing on them. grpc-js answers a request its deserializer throws on with INTERNAL
 * "Error deserializing request", and ignores any status the error carries; but garbage from a
 * client is a bad argument, not a server fault. So the deserializer hands on an empty request
 * marked with the reason, which the method's codec refuses with INVALID_ARGUMENT (see
 * {@link malformedReason}) like any other bad request, counted and logged as one.
 */
export function acceptMalformedRequests(packageDefinition: PackageDefinition, service: string, methods: readonly string[]): void {
  const definition = packageDefinition[service] as Record<string, { requestDeserialize: (bytes: Buffer) => unknown }> | undefined;
  for (const method of methods) {
    const attributes = definition?.[method];
    if (!attributes) throw new Error(`no method ${service}.${method} in the package definition`);
    const deserialize = attributes.requestDeserialize;
    attributes.requestDeserialize = (bytes) => {
      try {
        return deserialize(bytes);
      } catch (error) {
        const malformed: MalformedRequest = { inputs: [], outputs: [], raw_input_contents: [], [MALFORMED]: (error as Error).message };
        return malformed;
      }
    };
  }
}

/** Why a request could not be decoded, or undefined for a request that was. */
export function malformedReason(request: object): string | undefined {
  return (request as Partial<MalformedRequest>)[MALFORMED];
}

/** The model a request names: undefined when it names none, or could not be decoded (then nothing names a model). */
export function namedModel(request: { readonly model_name?: string }): string | undefined {
  return request.model_name && malformedReason(request) === undefined ? request.model_name : undefined;
}
