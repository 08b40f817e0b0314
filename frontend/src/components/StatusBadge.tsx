// A process or tool status as text (never colour alone).
export function StatusBadge({ status }: { status: string }) {
  return <span className={`badge badge-${status.replace(/_/g, "-")}`}>{status.replace(/_/g, " ")}</span>;
}
