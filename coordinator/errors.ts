import { InvalidIdError } from '../protocol/index.js';

/**
 * HTTP errors. Handlers throw these; `errorResponse` (the one place errors
 * become responses) turns them into `{code, message}` bodies. Anything else
 * thrown is a bug on our side: a 500 whose body says nothing about internals.
 */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** 400: the request is malformed; the message names the field and the rule. */
export class BadRequest extends HttpError {
  constructor(message: string, code = 'BAD_REQUEST') {
    super(400, code, message);
  }
}
/** 401: no token, or a token that is not known. */
export class Unauthorized extends HttpError {
  constructor(message = 'a valid token is required (Authorization: Bearer TOKEN)') {
    super(401, 'UNAUTHORIZED', message);
  }
}
/** 403: the token is fine but lacks a privilege. */
export class Forbidden extends HttpError {
  constructor(message: string) {
    super(403, 'FORBIDDEN', message);
  }
}
/** 404: the id or path names nothing. */
export class NotFound extends HttpError {
  constructor(message: string) {
    super(404, 'NOT_FOUND', message);
  }
}
/** 409: the request conflicts with the current state. */
export class Conflict extends HttpError {
  constructor(message: string, code = 'CONFLICT') {
    super(409, code, message);
  }
}
/** 405: the path exists, the method does not. */
export class MethodNotAllowed extends HttpError {
  constructor(method: string, path: string) {
    super(405, 'METHOD_NOT_ALLOWED', `${method} is not allowed on ${path}`);
  }
}

/** The response for anything a handler threw. */
export function errorResponse(err: unknown, log: (line: string) => void): { status: number; headers: Record<string, string>; body: string } {
  const headers = { 'content-type': 'application/json' };
  if (err instanceof HttpError) {
    return { status: err.status, headers, body: JSON.stringify({ code: err.code, message: err.message }) };
  }
  // The protocol's id and name parsers say exactly what is wrong with a client's value.
  if (err instanceof InvalidIdError) {
    return { status: 400, headers, body: JSON.stringify({ code: 'BAD_REQUEST', message: err.message }) };
  }
  log(`http: internal error: ${(err as Error)?.stack ?? String(err)}`);
  return { status: 500, headers, body: JSON.stringify({ code: 'INTERNAL', message: 'internal error; see the coordinator log' }) };
}
