// Approve or deny (with an optional reason) a tool call pending approval. The entry itself is
// replaced in place when the decision comes back over the stream.
import { useId, useState } from "react";
import { respondToApproval } from "../api/client";
import { useAction } from "../hooks/useAction";

export function ApprovalControls({ approvalId }: { approvalId: string }) {
  const [reason, setReason] = useState("");
  const { run, busy: sending, error } = useAction();
  const reasonId = useId();

  // The entry is replaced in place (by the stream) once the decision is stored.
  const decide = (approved: boolean) =>
    run(() => respondToApproval(approvalId, approved, approved || reason.trim() === "" ? null : reason.trim()));

  return (
    <div className="approval" role="group" aria-label="Approval">
      <button type="button" className="primary" disabled={sending} onClick={() => void decide(true)}>
        Approve
      </button>
      <label htmlFor={reasonId} className="visually-hidden">
        Reason for denying
      </label>
      <input
        id={reasonId}
        type="text"
        placeholder="Reason for denying (optional)"
        value={reason}
        onChange={(e) => setReason(e.target.value)}
        disabled={sending}
      />
      <button type="button" className="danger" disabled={sending} onClick={() => void decide(false)}>
        Deny
      </button>
      {error && <p role="alert">{error}</p>}
    </div>
  );
}
