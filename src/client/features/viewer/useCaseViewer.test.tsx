// @vitest-environment happy-dom
import { act, renderHook } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { JobView } from '../../../shared/jobs.js';
import type { MaskVersionView } from '../../../shared/masks.js';
import { useCaseViewer, useLeaveGuard, viewerVolumes } from './useCaseViewer.js';

// The viewer's state alone (no API involved): the fixtures are only the fields it reads.
const volumes = [
  { role: 'dwi' as const, url: 'https://api/v/dwi' },
  { role: 'adc' as const, url: 'https://api/v/adc' },
  { role: 'mask' as const, url: 'https://api/v/truth' },
];
const job = (id: string) => ({ id, result: { mask: { url: `https://api/v/pred-${id}` } } }) as unknown as JobView;
const version = { id: 'v1', version: 1, volume: { url: 'https://api/v/corrected' } } as unknown as MaskVersionView;

describe('useCaseViewer', () => {
  it('shows the latest finished job until another is picked, drawn over the background and the ground truth', () => {
    const { result, rerender } = renderHook(({ latest }) => useCaseViewer(latest), { initialProps: { latest: job('old') } });
    expect(viewerVolumes(volumes, result.current, []).map((v) => v.url)).toEqual([
      'https://api/v/dwi',
      'https://api/v/truth',
      'https://api/v/pred-old',
    ]);
    act(() => result.current.setResult(job('picked')));
    rerender({ latest: job('newer') });
    expect(result.current.result?.id).toBe('picked');
  });

  it('keeps the background on DWI while editing, whatever image was picked, and returns to it after', () => {
    const { result } = renderHook(() => useCaseViewer(null));
    act(() => result.current.setBackground('adc'));
    expect(viewerVolumes(volumes, result.current, [])[0]!.url).toBe('https://api/v/adc');
    act(() => result.current.setEditing(true));
    expect(viewerVolumes(volumes, result.current, [])[0]!.url).toBe('https://api/v/dwi');
    act(() => result.current.setEditing(false));
    expect(viewerVolumes(volumes, result.current, [])[0]!.url).toBe('https://api/v/adc');
  });

  it('an edit is unsaved until saved; saving shows the new version over the rest; a new edit starts clean', () => {
    const { result } = renderHook(() => useCaseViewer(null));
    act(() => result.current.setEditing(true));
    act(() => result.current.edited());
    expect(result.current.dirty).toBe(true);
    act(() => result.current.saved(version));
    expect(result.current.dirty).toBe(false);
    expect(viewerVolumes(volumes, result.current, [version]).at(-1)).toMatchObject({ key: 'version', url: 'https://api/v/corrected' });
    act(() => result.current.edited());
    act(() => result.current.setEditing(true));
    expect(result.current.dirty).toBe(false);
  });

  it('warns before the page is left with unsaved edits, and not once they are saved', () => {
    const leave = () => {
      const e = new Event('beforeunload', { cancelable: true });
      window.dispatchEvent(e);
      return e.defaultPrevented;
    };
    const { rerender, unmount } = renderHook(({ dirty }) => useLeaveGuard(dirty), { initialProps: { dirty: true } });
    expect(leave()).toBe(true);
    rerender({ dirty: false });
    expect(leave()).toBe(false);
    unmount();
  });
});
