import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';

const routeOf = Symbol('route');
type Routed = IncomingMessage & { [routeOf]?: string };

/** Notes each request's route template (Fastify's) first thing, before any middleware may answer early. */
export function noteRouteTemplates(fastify: FastifyInstance): void {
  fastify.addHook('onRequest', (request, _reply, done) => {
    (request.raw as Routed)[routeOf] = request.routeOptions.url;
    done();
  });
}

/** Notes the route template of a request answered before Fastify sees it (refused off its URL). */
export function noteRouteTemplate(req: IncomingMessage, template: string): void {
  (req as Routed)[routeOf] = template;
}

/**
 * Calls `answered` when the answer to a request is sent, with its route template (undefined when
 * no route matched: raw paths never become labels), status and duration from now. Counted on the
 * raw response, so that what Fastify answers before routing (a bad URL) counts too.
 */
export function whenAnswered(req: IncomingMessage, res: ServerResponse, answered: (method: string, routeTemplate: string | undefined, status: number, elapsedMs: number) => void): void {
  const started = performance.now();
  res.once('finish', () => answered(req.method ?? '', (req as Routed)[routeOf], res.statusCode, performance.now() - started));
}
