/**
 * JSON shapes of the REST API that more than one side reads (the coordinator
 * writes them, the CLI and the web page read them). See docs/api.md.
 */

/**
 * One event of a job's log, as `GET /api/v1/jobs/:id/events` serves it.
 *
 * @example
 * {"seq": 3, "time": 1763712000123, "stream": "stdout", "task": 0, "text": "line 1"}
 */
export interface EventJson {
  seq: number;
  time: number;
  stream: 'stdout' | 'stderr' | 'task' | 'job' | 'console' | 'worker' | 'control';
  task: number;
  /** The line as UTF-8 (invalid sequences replaced with U+FFFD). */
  text?: string;
  /** The exact bytes, present only when they are not valid UTF-8. */
  base64?: string;
  /** The line was not ended by a newline (a longer line continues, or output ended). */
  partial?: true;
  /** For `task` and `job` events. */
  event?: unknown;
}
