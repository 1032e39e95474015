/**
 * Atom feeds (RFC 4287) of finished jobs, so people can follow builds in a
 * feed reader. Pure rendering: the coordinator decides which jobs a reader
 * may see and passes only those.
 */

/** One feed entry: a finished job. */
export interface FeedEntry {
  /** The job id. */
  job: string;
  name: string;
  state: string;
  target: string;
  owner: string;
  /** The job page, absolute. */
  url: string;
  submittedAt: number;
  endedAt: number;
  /** Why it ended as it did, when known. */
  reason: string | null;
  tags: Record<string, string>;
}

/** A whole feed (also the JSON contract of the feed URLs). */
export interface FeedData {
  /** The feed's permanent id: its own absolute URL. */
  id: string;
  title: string;
  /** The HTML page the feed follows, absolute. */
  alternate: string;
  /** The newest entry's end time (or the time of the request when empty). */
  updated: number;
  entries: FeedEntry[];
}

// XML 1.0 forbids most control characters even as references; drop them rather than emit a feed readers reject.
// eslint-disable-next-line no-control-regex
const NOT_XML = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * Escapes text for XML content and attribute values, dropping characters
 * XML 1.0 cannot carry at all.
 *
 * @example
 * `<title>${escapeXml(job.name)}</title>`
 */
export function escapeXml(s: string): string {
  return s.replace(NOT_XML, '\uFFFD').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** RFC 3339 time, as Atom wants it. */
function rfc3339(ms: number): string {
  return new Date(Number.isFinite(ms) ? ms : 0).toISOString();
}

const LABEL: Record<string, string> = { completed: 'OK', failed: 'FAIL', cancelled: 'CANCEL' };

/**
 * The feed as an Atom document.
 *
 * @example
 * res.body = renderAtom({ id: url, title: 'buildwire: failures', alternate, updated, entries });
 */
export function renderAtom(d: FeedData): string {
  const x = escapeXml;
  const entries = d.entries.map((e) => {
    const tags = Object.entries(e.tags).map(([k, v]) => `${k}=${v}`).join(', ');
    const summary = `${LABEL[e.state] ?? e.state}: ${e.name} on ${e.target}${e.reason ? ` (${e.reason})` : ''}${tags ? `; tags ${tags}` : ''}`;
    return `<entry>
  <id>${x(e.url)}</id>
  <title>${x(`${LABEL[e.state] ?? e.state} ${e.name}`)}</title>
  <link rel="alternate" type="text/html" href="${x(e.url)}"/>
  <published>${rfc3339(e.submittedAt)}</published>
  <updated>${rfc3339(e.endedAt)}</updated>
  <author><name>${x(e.owner)}</name></author>
  <category term="${x(e.state)}"/>
  <summary type="text">${x(summary)}</summary>
</entry>`;
  }).join('\n');
  return `<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
<id>${x(d.id)}</id>
<title>${x(d.title)}</title>
<updated>${rfc3339(d.updated)}</updated>
<link rel="self" type="application/atom+xml" href="${x(d.id)}"/>
<link rel="alternate" type="text/html" href="${x(d.alternate)}"/>
<author><name>buildwire</name></author>
<generator>buildwire</generator>
${entries}
</feed>
`;
}
