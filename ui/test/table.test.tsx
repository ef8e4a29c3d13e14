// The shared data table: column headers every screen's table has, the actions column named for
// screen readers only (and only when asked for), and the rows the screen gives it; the
// remove action only API entries have.
import { act } from 'preact/test-utils';
import { afterEach, describe, expect, it } from 'vitest';
import { RemoveIfApi, Table } from '../src/components/ui';
import { mount } from './harness';

afterEach(() => {
  document.body.innerHTML = '';
});

describe('Table', () => {
  it('heads each column for screen readers and keeps the rows and their hooks', async () => {
    await mount(
      <Table label="Grants" class="audit" columns={['Groups', 'Source']} actions>
        <tr data-grant="g1">
          <td>analysts</td>
          <td>api</td>
          <td>
            <button type="button">Remove</button>
          </td>
        </tr>
      </Table>,
    );
    const table = document.querySelector('table')!;
    expect(table.getAttribute('aria-label')).toBe('Grants');
    expect(table.getAttribute('class')).toBe('audit');
    const heads = [...table.querySelectorAll('thead th')];
    expect(heads.map((h) => h.getAttribute('scope'))).toEqual(['col', 'col', 'col']);
    expect(heads.map((h) => h.textContent)).toEqual(['Groups', 'Source', 'Actions']);
    // The actions column's name is for screen readers; sighted users see the buttons.
    expect(heads[2].querySelector('.sr-only')?.textContent).toBe('Actions');
    const row = table.querySelector('tbody tr[data-grant="g1"]')!;
    expect([...row.querySelectorAll('td')].map((c) => c.textContent)).toEqual(['analysts', 'api', 'Remove']);
  });

  it('has no actions column unless asked, and no label unless given', async () => {
    await mount(
      <Table columns={['Environment', 'Port']} actions={false}>
        {null}
      </Table>,
    );
    const table = document.querySelector('table')!;
    expect(table.hasAttribute('aria-label')).toBe(false);
    expect([...table.querySelectorAll('th')].map((h) => h.textContent)).toEqual(['Environment', 'Port']);
    expect(table.querySelectorAll('tbody tr')).toHaveLength(0);
  });
});

describe('RemoveIfApi', () => {
  it('offers Remove, named, for API entries and says where config entries live', async () => {
    let removed = 0;
    await mount(
      <>
        <RemoveIfApi source="api" label="Remove dana from analysts" onRemove={() => removed++} />
        <RemoveIfApi source="config" label="Remove root from admins" onRemove={() => removed++} />
      </>,
    );
    const buttons = [...document.querySelectorAll('button')];
    expect(buttons.map((b) => [b.textContent, b.getAttribute('aria-label')])).toEqual([['Remove', 'Remove dana from analysts']]);
    await act(() => buttons[0].click());
    expect(removed).toBe(1);
    expect(document.body.textContent).toContain('in the config file');
  });
});
