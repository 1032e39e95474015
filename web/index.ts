/**
 * Server-rendered pages: pure rendering (plain data in, HTML text out),
 * the page data types, and the client scripts in `client/`. Nothing here
 * imports the coordinator; `coordinator/pages/` gathers the data, checks
 * who may see it, and hands it to these renderers.
 *
 * @example
 * const html = renderPage(shell, renderStatus(data, csrf), { scripts: ['/static/status.js'] });
 */
export { escapeHtml, fmtBytes, fmtDuration, fmtTime, jobLink, stateBadge, stateClass, tagList } from './html.js';
export { PAGE_CSS, renderLogin, renderPage } from './layout.js';
export type { LoginPageData, PageShell } from './layout.js';
export { renderChart, renderStatus } from './status.js';
export type { HourStat, StatusData } from './status.js';
export { JOB_STATES, queryString, renderHashPage, renderJobTable, renderJobsPage } from './lists.js';
export type { HashMatch, HashPageData, JobSummary, JobsPageData } from './lists.js';
export { adminButton, renderFactoriesPage, renderFactoryTable, renderHold, renderTargetsPage, renderWorkerTable, renderWorkersPage } from './fleet.js';
export type { FactoriesPageData, FactoryRow, TargetRow, TargetsPageData, WorkerRow, WorkersPageData } from './fleet.js';
export { escapeXml, renderAtom } from './feeds.js';
export type { FeedData, FeedEntry } from './feeds.js';
