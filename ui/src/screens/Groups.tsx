// Groups (administrators): who belongs to which group. Members from the config file are shown
// read-only; members added here (through the API) can be removed. An addition takes effect at
// the member's next request or connection, without a new sign-in; a removal also ends their open
// connections that no other grant covers.
import { useState } from 'preact/hooks';
import { api, type Group, type GroupMember } from '../api/client';
import { ErrorBox, Page, RemoveIfApi, Table, View, useAction } from '../components/ui';
import { fmtTime, useLoad } from '../lib/load';
import { ask } from '../components/Confirm';

export function Groups() {
  const groups = useLoad(() => api.groups(), []);
  const [group, setGroup] = useState('');
  const [member, setMember] = useState('');
  const [notice, setNotice] = useState<string | null>(null);
  const add = useAction();
  const remove = useAction();

  const submit = async (e: Event) => {
    e.preventDefault();
    setNotice(null);
    const g = group.trim();
    const m = member.trim();
    const r = await add.run(() => api.addGroupMember(g, m));
    if (r) {
      // An existing membership is not an error, but saying nothing would look like a no-op.
      setNotice(r.added ? null : `${r.member} already belongs to ${r.group}.`);
      setMember('');
      groups.reload();
    }
  };
  const del = async (g: Group, m: GroupMember) => {
    const title = `Remove ${m.member} from ${g.name}?`;
    if ((await ask({ title, message: 'Access through this group ends now: their open connections that no other grant covers are ended, and new ones are refused.', confirm: 'Remove' })) === null) return;
    if ((await remove.run(() => api.removeGroupMember(g.name, m.member).then(() => true))) !== undefined) groups.reload();
  };

  return (
    <Page title="Groups">
      <form class="card form-grid" onSubmit={submit} aria-labelledby="group-add">
        <h2 id="group-add">Add a member</h2>
        <label>
          Group
          <input value={group} onInput={(e) => setGroup(e.currentTarget.value)} list="group-names" placeholder="analysts" required />
        </label>
        <datalist id="group-names">
          {(groups.data ?? []).map((g) => (
            <option key={g.id} value={g.name} />
          ))}
        </datalist>
        <label>
          Member
          <input value={member} onInput={(e) => setMember(e.currentTarget.value)} placeholder="a user or service account" required />
        </label>
        <button type="submit" class="primary" disabled={add.busy}>
          Add member
        </button>
        {add.error && <ErrorBox error={add.error} />}
        {notice && (
          <p class="state info" role="status">
            {notice}
          </p>
        )}
      </form>
      {remove.error && <ErrorBox error={remove.error} />}
      <View load={groups} what="Loading groups" empty="No group has a member yet: add one above.">
        {(list) => (
          <Table label="Group members" columns={['Group', 'Member', 'Source', 'Added']} actions>
            {list.flatMap((g) =>
              g.members.map((m) => (
                <tr key={`${g.id}/${m.member}/${m.source}`} data-group={g.name} data-member={m.member}>
                  <td>{g.name}</td>
                  <td>{m.member}</td>
                  <td>{m.source}</td>
                  <td>
                    {fmtTime(m.added_at)}
                    {m.added_by ? ` by ${m.added_by}` : ''}
                  </td>
                  <td>
                    <RemoveIfApi source={m.source} onRemove={() => del(g, m)} label={`Remove ${m.member} from ${g.name}`} />
                  </td>
                </tr>
              )),
            )}
          </Table>
        )}
      </View>
    </Page>
  );
}
