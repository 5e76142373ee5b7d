import { navigate } from '../../router.js';
import { trpc } from '../../trpc.js';

/** The signed-in user's studies, each linking to its dashboard (nothing when there are none). */
export function StudyList() {
  const me = trpc.auth.me.useQuery();
  const studies = trpc.studies.list.useQuery(undefined, { enabled: !!me.data });
  if (!me.data || !studies.data?.length) return null;
  return (
    <section className="card" data-testid="study-list">
      <h2>Studies</h2>
      <ul className="cases">
        {studies.data.map((s) => (
          <li key={s.id}>
            <a
              href={`/studies/${s.id}`}
              onClick={(e) => {
                e.preventDefault();
                navigate(`/studies/${s.id}`);
              }}
            >
              {s.name}
            </a>
            <span className="roles">
              {s.cases} cases{s.role ? ` · ${s.role.toUpperCase()}` : ''}
            </span>
          </li>
        ))}
      </ul>
    </section>
  );
}
