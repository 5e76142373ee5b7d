import { navigate } from '../../router.js';
import { trpc } from '../../trpc.js';

/** The account in the header: who is signed in and Sign out, or a Sign in link. */
export function Account() {
  const utils = trpc.useUtils();
  const me = trpc.auth.me.useQuery();
  const signOut = trpc.auth.signOut.useMutation({
    onSuccess: async () => {
      await utils.invalidate();
      navigate('/');
    },
  });
  if (me.isPending) return <span className="account" />;
  if (!me.data) {
    return (
      <span className="account">
        <a
          href="/sign-in"
          onClick={(e) => {
            e.preventDefault();
            navigate('/sign-in');
          }}
        >
          Sign in
        </a>
      </span>
    );
  }
  return (
    <span className="account" data-testid="account">
      {me.data.role === 'guest' ? 'Guest' : me.data.email}
      <button className="link" onClick={() => signOut.mutate()}>
        Sign out
      </button>
    </span>
  );
}
