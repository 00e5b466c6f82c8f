import { Controller, Get } from '@nestjs/common';
import { ADMIN_OPENAPI, type OpenApiDocument } from './admin-openapi.js';

/**
 * Serves the OpenAPI description of the admin API. Deliberately without AdminAuthGuard: it is
 * documentation, the same for every server and holding no token, state or model name, so a client
 * can read it before it has the token.
 */
@Controller('admin')
export class AdminOpenApiHttpController {
  @Get('openapi.json')
  document(): OpenApiDocument {
    return ADMIN_OPENAPI;
  }
}
