import { Component, type ReactNode } from 'react';

/** Whatever breaks below (a viewer crash, a bad response) shows a message and a reload, not a blank page. */
export class ErrorBoundary extends Component<{ children: ReactNode }, { error: Error | null }> {
  override state = { error: null as Error | null };
  static getDerivedStateFromError(error: Error) {
    return { error };
  }
  override render() {
    if (this.state.error) {
      return (
        <div className="error" role="alert">
          <p>Something went wrong: {this.state.error.message}</p>
          <button onClick={() => location.reload()}>Reload</button>
        </div>
      );
    }
    return this.props.children;
  }
}
