"""The buildbot bench's window on a Buildbot master's own records.

Debian's buildbot 3.7 has no web UI package (buildbot-www), so the master
serves no REST API here. This reads what that API would serve, from the same
place: the master's SQLite database (state.sqlite, in WAL mode, so a reader
never blocks the master's writes). Every query runs in autocommit: a read
transaction held open would keep the master's WAL from being checkpointed.

  python3 watch.py watch DB STEP POLL_MS TIMEOUT_S
      Prints {"ev": "ready"} once it knows the newest buildset and build, then
      one JSON line per change it sees, as soon as it sees it (the bench
      stamps each line on arrival):
        {"ev": "buildset", "id": N}          a new buildset (the change was accepted)
        {"ev": "build", "id": N}             its build started
        {"ev": "lines", "n": N}              STEP's stdio log now holds N lines
        {"ev": "complete", "id": N}          the build has complete_at set
      After "complete" it waits for its stdin to close (so the bench can read
      its CPU time from /proc first), then exits 0; it exits 3 after TIMEOUT_S.

  python3 watch.py inspect DB BUILD_ID STEP
      Prints one JSON object: the build's and the step's times as Buildbot
      recorded them (whole seconds since the epoch), the stdio log's
      num_lines, and what its stored content holds: header lines before the
      first stdout line, stdout lines, lines after the last stdout line, and
      how many stdout lines differ from the bench script's line i
      ("%08d " then 90 x's, i counting from 1).
"""
import bz2
import json
import sqlite3
import sys
import time
import zlib


def connect(path):
    # Read-only; isolation_level=None is autocommit (no read transaction left open).
    return sqlite3.connect('file:%s?mode=ro' % path, uri=True, isolation_level=None, timeout=30)


def emit(obj):
    sys.stdout.write(json.dumps(obj) + '\n')
    sys.stdout.flush()


def newest(db, table):
    row = db.execute('SELECT max(id) FROM %s' % table).fetchone()
    return row[0] or 0


def stdio_lines(db, build_id, step):
    row = db.execute(
        "SELECT l.num_lines FROM logs l JOIN steps s ON l.stepid = s.id"
        " WHERE s.buildid = ? AND s.name = ? AND l.slug = 'stdio'",
        (build_id, step)).fetchone()
    return None if row is None else row[0]


def watch(path, step, poll_ms, timeout_s):
    db = connect(path)
    after_buildset = newest(db, 'buildsets')
    after_build = newest(db, 'builds')
    emit({'ev': 'ready'})
    deadline = time.monotonic() + timeout_s
    buildset = None
    build = None
    lines = None
    while time.monotonic() < deadline:
        if buildset is None:
            row = db.execute('SELECT id FROM buildsets WHERE id > ? ORDER BY id LIMIT 1', (after_buildset,)).fetchone()
            if row:
                buildset = row[0]
                emit({'ev': 'buildset', 'id': buildset})
        if buildset is not None and build is None:
            row = db.execute(
                'SELECT b.id FROM builds b JOIN buildrequests r ON b.buildrequestid = r.id'
                ' WHERE r.buildsetid = ? AND b.id > ? ORDER BY b.id LIMIT 1',
                (buildset, after_build)).fetchone()
            if row:
                build = row[0]
                emit({'ev': 'build', 'id': build})
        if build is not None:
            n = stdio_lines(db, build, step)
            if n is not None and n != lines:
                lines = n
                emit({'ev': 'lines', 'n': n})
            row = db.execute('SELECT complete_at FROM builds WHERE id = ?', (build,)).fetchone()
            if row and row[0] is not None:
                # One last look: the final lines and complete_at may land in the same poll.
                n = stdio_lines(db, build, step)
                if n is not None and n != lines:
                    emit({'ev': 'lines', 'n': n})
                emit({'ev': 'complete', 'id': build})
                sys.stdin.read()
                return 0
        time.sleep(poll_ms / 1000)
    return 3


def decompress(content, method):
    # Buildbot's codes (buildbot/db/logs.py): 0 raw, 1 gz (zlib), 2 bz2, 3 lz4.
    if method == 0:
        return content if isinstance(content, bytes) else content.encode('utf-8')
    if method == 1:
        return zlib.decompress(content)
    if method == 2:
        return bz2.decompress(content)
    if method == 3:
        import lz4.block
        return lz4.block.decompress(content)
    raise ValueError('unknown log compression %r' % method)


def inspect(path, build_id, step):
    db = connect(path)
    b = db.execute('SELECT number, started_at, complete_at, results FROM builds WHERE id = ?', (build_id,)).fetchone()
    s = db.execute('SELECT id, started_at, complete_at, results FROM steps WHERE buildid = ? AND name = ?', (build_id, step)).fetchone()
    if b is None or s is None:
        emit({'error': 'build %d or its step %r not found' % (build_id, step)})
        return 1
    log = db.execute("SELECT id, num_lines, complete FROM logs WHERE stepid = ? AND slug = 'stdio'", (s[0],)).fetchone()
    out = {
        'build': {'id': build_id, 'number': b[0], 'startedAt': b[1], 'completeAt': b[2], 'results': b[3]},
        'step': {'startedAt': s[1], 'completeAt': s[2], 'results': s[3]},
        'log': None,
    }
    if log is not None:
        pad = 'x' * 90
        header = 0
        stdout = 0
        trailer = 0
        wrong = 0
        first_wrong = None
        chunks = 0
        stored = 0
        for content, method in db.execute('SELECT content, compressed FROM logchunks WHERE logid = ? ORDER BY first_line', (log[0],)):
            chunks += 1
            text = decompress(content, method)
            stored += len(text)
            # A stream log's chunk is its lines joined by newlines, each led by its stream: o(ut), e(rr), h(eader).
            for line in text.decode('utf-8', 'replace').split('\n'):
                if line.startswith('o'):
                    stdout += 1
                    trailer = 0
                    if line[1:] != '%08d %s' % (stdout, pad):
                        wrong += 1
                        if first_wrong is None:
                            first_wrong = {'line': stdout, 'text': line[:120]}
                elif stdout == 0:
                    header += 1
                else:
                    trailer += 1
        out['log'] = {
            'id': log[0], 'numLines': log[1], 'complete': log[2], 'chunks': chunks, 'storedBytes': stored,
            'header': header, 'stdout': stdout, 'trailer': trailer, 'wrong': wrong, 'firstWrong': first_wrong,
        }
    emit(out)
    return 0


def main(argv):
    if len(argv) == 6 and argv[1] == 'watch':
        return watch(argv[2], argv[3], float(argv[4]), float(argv[5]))
    if len(argv) == 5 and argv[1] == 'inspect':
        return inspect(argv[2], int(argv[3]), argv[4])
    sys.stderr.write(__doc__)
    return 64


if __name__ == '__main__':
    sys.exit(main(sys.argv))
