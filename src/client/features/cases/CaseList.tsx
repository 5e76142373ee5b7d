import { useState } from 'react';
import { navigate } from '../../router.js';
import { trpc } from '../../trpc.js';
import { UploadDialog } from './UploadDialog.js';

/** All cases the viewer may see: search by name, pages of 20, demo badge, the volumes each has. */
export function CaseList() {
  const [search, setSearch] = useState('');
  const [uploading, setUploading] = useState(false);
  const me = trpc.auth.me.useQuery();
  const cases = trpc.cases.list.useInfiniteQuery(
    { limit: 20, ...(search.trim() ? { search: search.trim() } : {}) },
    { getNextPageParam: (last) => last.nextCursor ?? undefined },
  );
  const items = cases.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <section className="card">
      <div className="row">
        <h1>Cases</h1>
        <input
          type="search"
          placeholder="Search by name"
          aria-label="Search cases"
          value={search}
          onChange={(e) => setSearch(e.target.value)}
        />
        {me.data && !uploading && <button onClick={() => setUploading(true)}>Upload a case</button>}
      </div>
      {uploading && <UploadDialog onClose={() => setUploading(false)} />}
      {cases.isPending && <p>Loading cases…</p>}
      {cases.isError && <p className="error">{cases.error.message}</p>}
      {cases.isSuccess && items.length === 0 && <p className="empty">{search ? `No case matches “${search}”.` : 'No cases yet.'}</p>}
      <ul className="cases" data-testid="case-list">
        {items.map((c) => (
          <li key={c.id}>
            <a
              href={`/cases/${c.id}`}
              onClick={(e) => {
                e.preventDefault();
                navigate(`/cases/${c.id}`);
              }}
            >
              {c.name}
            </a>
            {c.demo && <span className="badge">{c.source === 'demo' ? 'demo' : 'shared'}</span>}
            <span className="roles">{c.roles.map((r) => r.toUpperCase()).join(' · ')}</span>
          </li>
        ))}
      </ul>
      {cases.hasNextPage && (
        <button onClick={() => cases.fetchNextPage()} disabled={cases.isFetchingNextPage}>
          More cases
        </button>
      )}
    </section>
  );
}
