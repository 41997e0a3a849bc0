"""Deployment controller: rolls a deployment's pods between replica sets, like kube-controller-manager's.

Follows `pkg/controller/deployment/` (deployment_controller.go, sync.go, rolling.go, recreate.go,
progress.go): every template gets its own replica set named `<deployment>-<pod-template-hash>`;
RollingUpdate grows the new one and shrinks the old ones within maxSurge/maxUnavailable, Recreate scales the
old ones to zero and waits for their pods to go first; scaling mid-rollout is proportional; paused
deployments only scale; old replica sets beyond revisionHistoryLimit are deleted; the revision annotations,
Progressing/Available conditions (with progressDeadlineSeconds) and status counters are kube's, so
`kubectl rollout status|history|undo|restart|pause|resume` and `kubectl scale` work unchanged.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence
from typing import Any

from shim.client import ApiClient, ApiException, SharedInformerFactory, object_key
from shim.controllers import deploymentutil as du
from shim.controllers.ownership import (
    ControllerRefManager,
    controlled_by,
    controller_of,
    controller_ref,
    index_by_controller,
    owners_selecting,
    recheck_deletion,
    resolve_controller,
)
from shim.controllers.podutil import now, parse_time
from shim.controllers.reconciler import Reconciler, namespace_terminating
from shim.machinery.resources import DEPLOYMENTS, PODS, REPLICASETS
from shim.machinery.selectors import LabelSelector, SelectorError, label_selector_from_object

Obj = dict[str, Any]


class DeploymentController(Reconciler):
    """Watches deployments, replica sets and pods; one sync per deployment key (`namespace/name`)."""

    def __init__(self, client: ApiClient, informers: SharedInformerFactory | None = None) -> None:
        super().__init__(client, "deployment-controller", informers)
        self.deployments = self.watch(DEPLOYMENTS, self._on_deployment)
        self.replicasets = self.watch(REPLICASETS, self._on_replicaset)
        self.pods = self.watch(PODS, self._on_pod)
        index_by_controller(self.pods)

    async def sync(self, key: str) -> None:
        """One reconcile of one deployment (kube's syncDeployment)."""
        d = self.deployments.get(key)
        if d is None:
            return
        await _Sync(self, copy.deepcopy(d)).run()

    # -- informer events ---------------------------------------------------------------------------------------

    async def _on_deployment(self, event: str, d: Obj, old: Obj | None) -> None:
        self.queue.add(object_key(d))

    async def _on_replicaset(self, event: str, rs: Obj, old: Obj | None) -> None:
        ref = controller_of(rs)
        if event == "DELETED" or old is None:
            if ref is not None:
                self._enqueue_owner(rs, ref)
            elif event != "DELETED" and not rs["metadata"].get("deletionTimestamp"):
                self._enqueue_selecting(rs)  # an orphan: a deployment selecting it may adopt it
            return
        old_ref = controller_of(old)
        ref_changed = (old_ref or {}).get("uid") != (ref or {}).get("uid")
        if ref_changed and old_ref is not None:
            self._enqueue_owner(old, old_ref)
        if ref is not None:
            self._enqueue_owner(rs, ref)
        elif ref_changed or (old["metadata"].get("labels") or {}) != (rs["metadata"].get("labels") or {}):
            self._enqueue_selecting(rs)

    async def _on_pod(self, event: str, pod: Obj, old: Obj | None) -> None:
        if event != "DELETED":
            return
        # a Recreate rollout waits for the old pods to be gone before it starts the new replica set
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.replicasets.get(f"{pod['metadata'].get('namespace', '')}/{ref.get('name', '')}")
        if rs is None or (owner := controller_of(rs)) is None:
            return
        d = self._owner(rs, owner)
        if d is not None and not du.is_rolling_update(d):
            self.queue.add(object_key(d))

    def _owner(self, rs: Obj, ref: Obj) -> Obj | None:
        return resolve_controller(self.deployments, rs, ref, "Deployment")

    def _enqueue_owner(self, rs: Obj, ref: Obj) -> None:
        d = self._owner(rs, ref)
        if d is not None:
            self.queue.add(object_key(d))

    def _enqueue_selecting(self, rs: Obj) -> None:
        for d in owners_selecting(self.deployments, rs):
            self.queue.add(object_key(d))


class _Sync:
    """One reconcile of one deployment: a working copy of it and of its replica sets, updated as we write."""

    def __init__(self, controller: DeploymentController, d: Obj) -> None:
        self.controller = controller
        self.client = controller.client
        self.d = d
        self.d.setdefault("status", {})
        self.namespace = d["metadata"]["namespace"]
        self.key = object_key(d)
        self.rs_list: list[Obj] = []

    async def run(self) -> None:
        try:
            selector = label_selector_from_object(self.d["spec"].get("selector"))
        except SelectorError as exc:
            self.controller.log.warning("deployment %s has an invalid selector: %s", self.key, exc)
            return
        await self._claim_replica_sets(selector)
        if self.d["metadata"].get("deletionTimestamp"):
            new_rs, old_rss = await self._replica_sets(create=False)
            await self._sync_status([*old_rss, new_rs], new_rs)
            return
        await self._check_paused_conditions()
        if self.d["spec"].get("paused") or await self._is_scaling_event():
            await self._scale_only()
        elif du.is_rolling_update(self.d):
            await self._rollout_rolling()
        else:
            await self._rollout_recreate()

    # -- replica sets ------------------------------------------------------------------------------------------

    async def _claim_replica_sets(self, selector: LabelSelector) -> None:
        claimer = ControllerRefManager(
            self.client,
            REPLICASETS,
            self.d,
            controller_ref(self.d, "apps/v1", "Deployment"),
            selector,
            recheck_deletion(self.client, DEPLOYMENTS, self.d),
        )
        self.rs_list = await claimer.claim(self.controller.replicasets.in_namespace(self.namespace))

    def _remember(self, rs: Obj) -> Obj:
        """Replace our copies of a replica set we just wrote (the watch only brings it back later)."""
        self.controller.replicasets.observe(rs)
        uid = rs["metadata"]["uid"]
        for i, known in enumerate(self.rs_list):
            if known["metadata"]["uid"] == uid:
                self.rs_list[i] = rs
                return rs
        self.rs_list.append(rs)
        return rs

    def _latest(self, rs: Obj | None) -> Obj | None:
        if rs is None:
            return None
        uid = rs["metadata"]["uid"]
        return next((known for known in self.rs_list if known["metadata"]["uid"] == uid), rs)

    async def _replica_sets(self, create: bool) -> tuple[Obj | None, list[Obj]]:
        """(new replica set, old ones) with the revisions synced; the new one is created when `create`."""
        existing = du.find_new_replica_set(self.d, self.rs_list)
        old_rss = du.find_old_replica_sets(self.rs_list, existing)
        return await self._new_replica_set(existing, old_rss, create), old_rss

    async def _new_replica_set(self, existing: Obj | None, old_rss: list[Obj], create: bool) -> Obj | None:
        """kube's getNewReplicaSet: sync the existing one's annotations and the deployment's revision, or
        create the replica set of the current template."""
        new_revision = du.max_revision(old_rss) + 1
        d = self.d
        if existing is not None:
            rs = copy.deepcopy(existing)
            annotations_changed = du.set_new_replica_set_annotations(d, rs, new_revision, exists=True)
            min_ready = d["spec"].get("minReadySeconds", 0)
            if annotations_changed or rs["spec"].get("minReadySeconds", 0) != min_ready:
                rs["spec"]["minReadySeconds"] = min_ready
                return self._remember(await self.client.replace(REPLICASETS, rs, self.namespace))
            needs_update = _set_revision(d, (rs["metadata"].get("annotations") or {}).get(du.REVISION, ""))
            if du.has_progress_deadline(d) and du.get_condition(d["status"], du.PROGRESSING) is None:
                message = f'Found new replica set "{rs["metadata"]["name"]}"'
                du.set_condition(d["status"], du.new_condition(du.PROGRESSING, "True", du.FOUND_NEW_RS, message, now()))
                needs_update = True
            if needs_update:
                await self._write_status()
            return rs
        if not create:
            return None
        created, already_existed = await self._create_replica_set(old_rss, new_revision)
        needs_update = _set_revision(self.d, str(new_revision))
        if not already_existed and du.has_progress_deadline(self.d):
            message = f'Created new replica set "{created["metadata"]["name"]}"'
            condition = du.new_condition(du.PROGRESSING, "True", du.NEW_REPLICA_SET, message, now())
            du.set_condition(self.d["status"], condition)
            needs_update = True
        if needs_update:
            await self._write_status()
        return self._remember(created)

    async def _create_replica_set(self, old_rss: list[Obj], new_revision: int) -> tuple[Obj, bool]:
        """Create `<name>-<hash>`; (the replica set, whether it already existed). A same-named replica set of
        another template is a hash collision: bump status.collisionCount and retry later."""
        d = self.d
        template = copy.deepcopy(d["spec"].get("template") or {})
        pod_hash = du.compute_hash(template, d["status"].get("collisionCount"))
        template_meta = template.setdefault("metadata", {})
        template_meta["labels"] = {**(template_meta.get("labels") or {}), du.POD_TEMPLATE_HASH: pod_hash}
        selector = copy.deepcopy(d["spec"].get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), du.POD_TEMPLATE_HASH: pod_hash}
        name = f"{d['metadata']['name']}-{pod_hash}"
        new_rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "ownerReferences": [controller_ref(d, "apps/v1", "Deployment")],
                "labels": dict(template_meta["labels"]),
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": d["spec"].get("minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
        }
        new_rs["spec"]["replicas"] = du.new_rs_new_replicas(d, [*old_rss, new_rs], new_rs)
        du.set_new_replica_set_annotations(d, new_rs, new_revision, exists=False)
        try:
            created = await self.client.create(REPLICASETS, new_rs, self.namespace)
        except ApiException as exc:
            if exc.reason == "AlreadyExists":
                return await self._existing_or_collision(name, exc), True
            if not namespace_terminating(exc):
                await self._report_create_failure(name, exc)
            raise
        if du.replicas(created) > 0:
            self._event("Normal", "ScalingReplicaSet", f"Scaled up replica set {name} to {du.replicas(created)}")
        return created, False

    async def _existing_or_collision(self, name: str, exc: ApiException) -> Obj:
        existing = await self.client.get(REPLICASETS, name, self.namespace)
        ref = controller_of(existing)
        template = self.d["spec"].get("template") or {}
        ours = ref is not None and ref.get("uid") == self.d["metadata"]["uid"]
        if ours and du.equal_ignore_hash(template, existing["spec"].get("template") or {}):
            return existing  # created by an earlier sync whose result the cache had not shown yet
        status = self.d["status"]
        status["collisionCount"] = status.get("collisionCount", 0) + 1
        await self._write_status()
        raise exc

    async def _report_create_failure(self, name: str, exc: ApiException) -> None:
        message = f'Failed to create new replica set "{name}": {exc.body.get("message") or exc}'
        if du.has_progress_deadline(self.d):
            condition = du.new_condition(du.PROGRESSING, "False", du.FAILED_RS_CREATE, message, now())
            du.set_condition(self.d["status"], condition)
            with contextlib.suppress(ApiException):  # the creation failure is the news; the requeue retries both
                await self._write_status()
        self._event("Warning", du.FAILED_RS_CREATE, message)

    # -- scaling -----------------------------------------------------------------------------------------------

    async def _is_scaling_event(self) -> bool:
        """Some active replica set was sized for another `spec.replicas`: a scale, not a template change."""
        new_rs, old_rss = await self._replica_sets(create=False)
        want = du.replicas(self.d)
        for rs in du.active([*old_rss, new_rs]):
            desired = du.desired_replicas_annotation(rs)
            if desired is not None and desired != want:
                return True
        return False

    async def _scale_only(self) -> None:
        """kube's sync(): a scaling event or a paused deployment; no rollout progress."""
        new_rs, old_rss = await self._replica_sets(create=False)
        await self._scale(new_rs, old_rss)
        if self.d["spec"].get("paused"):
            await self._cleanup(old_rss)
        await self._sync_status([*old_rss, new_rs], new_rs)

    async def _scale(self, new_rs: Obj | None, old_rss: list[Obj]) -> None:
        """Bring the replica sets to `spec.replicas` (plus surge): all of it to the only active one, else
        proportionally to their sizes, so a scale mid-rollout does not speed the rollout up."""
        d = self.d
        want = du.replicas(d)
        only = du.find_active_or_latest(new_rs, old_rss)
        if only is not None:
            if du.replicas(only) != want:
                await self._scale_and_record(only, want)
            return
        if du.is_saturated(d, new_rs):
            for old in du.active(old_rss):
                await self._scale_and_record(old, 0)
            return
        if not du.is_rolling_update(d):
            return
        rss = du.active([*old_rss, new_rs])
        allowed = want + du.max_surge(d) if want > 0 else 0
        to_add = allowed - du.total_replicas(rss)
        operation = "up" if to_add > 0 else "down" if to_add < 0 else ""
        # the biggest first; among equals, scale up the newest and scale down the oldest first
        rss.sort(key=du.by_creation, reverse=to_add > 0)
        rss.sort(key=du.replicas, reverse=True)
        sizes: list[int] = []
        added = 0
        for rs in rss:
            share = du.proportion(rs, d, to_add, added) if to_add else 0
            sizes.append(du.replicas(rs) + share)
            added += share
        if rss and to_add:
            sizes[0] = max(sizes[0] + to_add - added, 0)  # leftovers go to the biggest
        for rs, size in zip(rss, sizes, strict=True):
            await self._scale_replica_set(rs, size, operation)

    async def _scale_and_record(self, rs: Obj, size: int) -> tuple[bool, Obj]:
        if du.replicas(rs) == size:
            return False, rs
        return await self._scale_replica_set(rs, size, "up" if du.replicas(rs) < size else "down")

    async def _scale_replica_set(self, rs: Obj, size: int, operation: str) -> tuple[bool, Obj]:
        """Set a replica set's size and replica annotations; a ScalingReplicaSet event when the size changed."""
        d = self.d
        want, maximum = du.replicas(d), du.replicas(d) + du.max_surge(d)
        resize = du.replicas(rs) != size
        if not resize and not du.replicas_annotations_need_update(rs, want, maximum):
            return False, rs
        before = du.replicas(rs)
        body = copy.deepcopy(rs)
        body["spec"]["replicas"] = size
        du.set_replicas_annotations(body, want, maximum)
        updated = self._remember(await self.client.replace(REPLICASETS, body, self.namespace))
        if resize:
            name = updated["metadata"]["name"]
            self._event("Normal", "ScalingReplicaSet", f"Scaled {operation} replica set {name} to {size} from {before}")
        return resize, updated

    async def _cleanup(self, old_rss: list[Obj]) -> None:
        """Delete the oldest revisions beyond revisionHistoryLimit, if they are scaled down and settled."""
        if not du.has_revision_history_limit(self.d):
            return
        alive = sorted((rs for rs in old_rss if not rs["metadata"].get("deletionTimestamp")), key=du.by_revision)
        for rs in alive[: max(len(alive) - self.d["spec"]["revisionHistoryLimit"], 0)]:
            status = rs.get("status") or {}
            settled = status.get("observedGeneration", 0) >= rs["metadata"].get("generation", 0)
            if status.get("replicas", 0) or du.replicas(rs) or not settled:
                continue
            try:
                await self.client.delete(REPLICASETS, rs["metadata"]["name"], self.namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise

    # -- rollouts ----------------------------------------------------------------------------------------------

    async def _rollout_rolling(self) -> None:
        """Grow the new replica set within maxSurge, shrink the old ones within maxUnavailable."""
        new_rs, old_rss = await self._replica_sets(create=True)
        assert new_rs is not None
        all_rss = [*old_rss, new_rs]
        scaled = await self._reconcile_new_replica_set(all_rss, new_rs)
        if not scaled:
            scaled = await self._reconcile_old_replica_sets(all_rss, du.active(old_rss), new_rs)
        if not scaled and du.deployment_complete(self.d, self.d["status"]):
            await self._cleanup(old_rss)
        await self._sync_rollout_status(all_rss, new_rs)

    async def _reconcile_new_replica_set(self, all_rss: list[Obj], new_rs: Obj) -> bool:
        want = du.replicas(self.d)
        if du.replicas(new_rs) == want:
            return False
        size = want if du.replicas(new_rs) > want else du.new_rs_new_replicas(self.d, all_rss, new_rs)
        scaled, _ = await self._scale_and_record(new_rs, size)
        return scaled

    async def _reconcile_old_replica_sets(self, all_rss: list[Obj], old_rss: list[Obj], new_rs: Obj) -> bool:
        """Scale old replica sets down as far as availability allows: unhealthy replicas first (they cost no
        availability), then available ones while more than replicas - maxUnavailable stay available."""
        if du.total_replicas(old_rss) == 0:
            return False
        min_available = du.replicas(self.d) - du.max_unavailable(self.d)
        new_unavailable = du.replicas(new_rs) - du.available_replicas(new_rs)
        max_scaled_down = du.total_replicas(all_rss) - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        try:
            old_rss, cleaned = await self._cleanup_unhealthy_replicas(old_rss, max_scaled_down)
            scaled = await self._scale_down_old_replica_sets([*old_rss, new_rs], old_rss)
        except ApiException as exc:
            # kube carries on with the status here; the replica set events requeue the deployment
            self.controller.log.debug("deployment %s: scaling down: %s", self.key, exc)
            return False
        return cleaned + scaled > 0

    async def _cleanup_unhealthy_replicas(self, old_rss: list[Obj], limit: int) -> tuple[list[Obj], int]:
        old_rss = sorted(old_rss, key=du.by_creation)
        total = 0
        for i, rs in enumerate(old_rss):
            if total >= limit:
                break
            unhealthy = du.replicas(rs) - du.available_replicas(rs)
            if du.replicas(rs) == 0 or unhealthy <= 0:
                continue
            count = min(limit - total, unhealthy)
            _, old_rss[i] = await self._scale_and_record(rs, du.replicas(rs) - count)
            total += count
        return old_rss, total

    async def _scale_down_old_replica_sets(self, all_rss: list[Obj], old_rss: list[Obj]) -> int:
        min_available = du.replicas(self.d) - du.max_unavailable(self.d)
        available = sum(du.available_replicas(rs) for rs in all_rss)
        if available <= min_available:
            return 0
        budget = available - min_available
        total = 0
        for rs in sorted(old_rss, key=du.by_creation):
            if total >= budget:
                break
            if du.replicas(rs) == 0:
                continue
            count = min(du.replicas(rs), budget - total)
            await self._scale_and_record(rs, du.replicas(rs) - count)
            total += count
        return total

    async def _rollout_recreate(self) -> None:
        """Scale every old replica set to zero, wait until their pods are gone, then scale up the new one."""
        new_rs, old_rss = await self._replica_sets(create=False)
        scaled_down = False
        for rs in du.active(old_rss):
            scaled, _ = await self._scale_and_record(rs, 0)
            scaled_down = scaled_down or scaled
        if scaled_down or self._old_pods_running(new_rs, old_rss):
            await self._sync_rollout_status([*old_rss, new_rs], new_rs)
            return
        if new_rs is None:
            new_rs, old_rss = await self._replica_sets(create=True)
            assert new_rs is not None
        await self._scale_and_record(new_rs, du.replicas(self.d))
        if du.deployment_complete(self.d, self.d["status"]):
            await self._cleanup(old_rss)
        await self._sync_rollout_status([*old_rss, new_rs], new_rs)

    def _old_pods_running(self, new_rs: Obj | None, old_rss: list[Obj]) -> bool:
        """Old replica sets still report pods, or some pod of theirs is not finished (terminating counts)."""
        if du.total_status([self._latest(rs) for rs in old_rss], "replicas") > 0:
            return True
        old_uids = {rs["metadata"]["uid"] for rs in old_rss} - ({new_rs["metadata"]["uid"]} if new_rs else set())
        return any(
            (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            for uid in old_uids
            for pod in controlled_by(self.controller.pods, uid)
        )

    # -- status ------------------------------------------------------------------------------------------------

    async def _check_paused_conditions(self) -> None:
        """Progressing=Unknown DeploymentPaused/DeploymentResumed, so a pause never counts against the deadline."""
        d = self.d
        if not du.has_progress_deadline(d):
            return
        condition = du.get_condition(d["status"], du.PROGRESSING)
        if condition is not None and condition.get("reason") == du.TIMED_OUT:
            return
        paused_recorded = condition is not None and condition.get("reason") == du.PAUSED
        if d["spec"].get("paused") and not paused_recorded:
            new = du.new_condition(du.PROGRESSING, "Unknown", du.PAUSED, "Deployment is paused", now())
        elif not d["spec"].get("paused") and paused_recorded:
            new = du.new_condition(du.PROGRESSING, "Unknown", du.RESUMED, "Deployment is resumed", now())
        else:
            return
        du.set_condition(d["status"], new)
        await self._write_status()

    async def _sync_status(self, all_rss: Sequence[Obj | None], new_rs: Obj | None) -> None:
        """Write the counters and Available condition if they changed (kube's syncDeploymentStatus)."""
        status = du.calculate_status([self._latest(rs) for rs in all_rss], self._latest(new_rs), self.d, now())
        if not du.same_status(self.d["status"], status):
            self.d["status"] = status
            await self._write_status()

    async def _sync_rollout_status(self, all_rss: Sequence[Obj | None], new_rs: Obj | None) -> None:
        """Status plus the Progressing condition: complete, progressing, or timed out (kube's progress.go)."""
        d = self.d
        at = now()
        all_rss = [self._latest(rs) for rs in all_rss]
        new_rs = self._latest(new_rs)
        status = du.calculate_status(all_rss, new_rs, d, at)
        if not du.has_progress_deadline(d):
            du.remove_condition(status, du.PROGRESSING)
        current = du.get_condition(d["status"], du.PROGRESSING)
        rolled_out = (
            status.get("replicas", 0) == status.get("updatedReplicas", 0)
            and current is not None
            and current.get("reason") == du.NEW_RS_AVAILABLE
        )
        if du.has_progress_deadline(d) and not rolled_out:
            subject = (
                f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs else f'Deployment "{d["metadata"]["name"]}"'
            )
            if du.deployment_complete(d, status):
                condition = du.new_condition(
                    du.PROGRESSING, "True", du.NEW_RS_AVAILABLE, f"{subject} has successfully progressed.", at
                )
                du.set_condition(status, condition)
            elif du.deployment_progressing(d, status):
                condition = du.new_condition(
                    du.PROGRESSING, "True", du.REPLICA_SET_UPDATED, f"{subject} is progressing.", at
                )
                # progress refreshes lastUpdateTime even when the reason is unchanged
                if current is not None:
                    if current.get("status") == "True":
                        condition["lastTransitionTime"] = current.get("lastTransitionTime")
                    du.remove_condition(status, du.PROGRESSING)
                du.set_condition(status, condition)
            elif du.deployment_timed_out(d, status, at):
                condition = du.new_condition(
                    du.PROGRESSING, "False", du.TIMED_OUT, f"{subject} has timed out progressing.", at
                )
                du.set_condition(status, condition)
        failure = _replica_failure(all_rss, new_rs)
        if failure is not None:
            du.set_condition(status, failure)
        else:
            du.remove_condition(status, du.REPLICA_FAILURE)
        if du.same_status(d["status"], status):
            self._requeue_if_stuck(status)
            return
        d["status"] = status
        await self._write_status()

    def _requeue_if_stuck(self, status: Obj) -> None:
        """Without progress nothing will wake this deployment: check again when its deadline passes."""
        d = self.d
        current = du.get_condition(d["status"], du.PROGRESSING)
        if not du.has_progress_deadline(d) or current is None:
            return
        if du.deployment_complete(d, status) or current.get("reason") == du.TIMED_OUT:
            return
        since = parse_time(current.get("lastUpdateTime"))
        if since is None:
            return
        remaining = d["spec"]["progressDeadlineSeconds"] - (now() - since).total_seconds()
        # lastUpdateTime has whole seconds: waking a little after the deadline finds it passed
        self.controller.queue.add_after(self.key, max(remaining, 0.0) + 0.5)

    async def _write_status(self) -> None:
        self.d = await self.client.replace(DEPLOYMENTS, self.d, self.namespace, "status")
        self.controller.deployments.observe(copy.deepcopy(self.d))
        self.d.setdefault("status", {})

    def _event(self, type_: str, reason: str, message: str) -> None:
        self.controller.events.emit(self.d, type_, reason, message)


def _set_revision(d: Obj, revision: str) -> bool:
    """Record the new replica set's revision on the deployment; True when it changed."""
    annotations = d["metadata"].setdefault("annotations", {})
    if annotations.get(du.REVISION) == revision:
        return False
    annotations[du.REVISION] = revision
    return True


def _replica_failure(all_rss: Sequence[Obj | None], new_rs: Obj | None) -> Obj | None:
    """A ReplicaFailure condition of the new replica set (else of any other) as a deployment condition."""
    for rs in [new_rs, *all_rss]:
        for condition in ((rs or {}).get("status") or {}).get("conditions") or ():
            if condition.get("type") == du.REPLICA_FAILURE:
                return {
                    "type": du.REPLICA_FAILURE,
                    "status": condition.get("status"),
                    "lastUpdateTime": condition.get("lastTransitionTime"),
                    "lastTransitionTime": condition.get("lastTransitionTime"),
                    "reason": condition.get("reason"),
                    "message": condition.get("message"),
                }
    return None
