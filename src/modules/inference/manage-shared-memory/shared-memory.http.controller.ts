import { Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { RouteConfig } from '@nestjs/platform-fastify';
import { z } from 'zod';
import { AppConfig } from '../../../infra/config/app-config.js';
import { BINARY_TENSOR_BODY } from '../../../infra/http/request-body-parsers.js';
import { jsonOf, parseBody } from '../../../infra/http/request-body.js';
import { ManageSharedMemoryHandler } from './manage-shared-memory.handler.js';

const registerBody = z.strictObject({
  key: z.string(),
  offset: z.number().int().min(0).optional(),
  byte_size: z.number().int().min(0),
});

/**
 * Triton's shared memory extension over HTTP (`extension_shared_memory.md`): status answers
 * `[{name, key, offset, byte_size}]`; register and unregister answer 200 with an empty body.
 */
@Controller('v2')
export class SharedMemoryHttpController {
  constructor(
    private readonly handler: ManageSharedMemoryHandler,
    private readonly config: AppConfig,
  ) {}

  @Get(['systemsharedmemory/status', 'systemsharedmemory/region/:name/status'])
  systemStatus(@Param('name') name: string | undefined) {
    return this.handler.systemStatus(name).map((region) => ({ name: region.name, key: region.key, offset: region.offset, byte_size: region.byteSize }));
  }

  // tritonclient sends its JSON without a content type: read as bytes, whatever the type says.
  @Post('systemsharedmemory/region/:name/register')
  @HttpCode(200)
  @RouteConfig({ [BINARY_TENSOR_BODY]: true })
  systemRegister(@Param('name') name: string, @Body() body: unknown): void {
    const { key, offset, byte_size } = parseBody(registerBody, jsonOf(body, this.config.MAX_JSON_DEPTH), 'INFERENCE.INVALID_REQUEST');
    this.handler.systemRegister(name, key, offset ?? 0, byte_size);
  }

  @Post(['systemsharedmemory/unregister', 'systemsharedmemory/region/:name/unregister'])
  @HttpCode(200)
  systemUnregister(@Param('name') name: string | undefined): void {
    this.handler.systemUnregister(name);
  }

  @Get(['cudasharedmemory/status', 'cudasharedmemory/region/:name/status'])
  cudaStatus(@Param('name') name: string | undefined) {
    return this.handler.cudaStatus(name);
  }

  @Post('cudasharedmemory/region/:name/register')
  @HttpCode(200)
  cudaRegister(@Param('name') name: string): void {
    this.handler.cudaRegister(name);
  }

  @Post(['cudasharedmemory/unregister', 'cudasharedmemory/region/:name/unregister'])
  @HttpCode(200)
  cudaUnregister(): void {
    this.handler.cudaUnregister();
  }
}
