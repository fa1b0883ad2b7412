"""Protobuf field numbers of the Kubernetes API types k8py decodes.

Kubernetes clients built on client-go's typed clients (kubectl's ``create``
subcommands, ``create token``, ``auth can-i``, ``autoscale``, ``debug``) send bodies as
``application/vnd.kubernetes.protobuf``. This table says, per message, which
field number carries which JSON property; ``k8py.api.protobuf`` walks it.

Data, not code: one entry per message, ``"<package>.<Message>"`` ->
space-separated fields ``NUMBER:JSONNAME:TYPE[:FLAGS]``.

TYPE
  ``s`` string, ``i`` integer (varint, signed), ``b`` bool, ``y`` bytes
  (base64 in JSON); ``Quantity``, ``Time``, ``MicroTime``, ``Duration``,
  ``FieldsV1``, ``IntOrString``, ``RawExtension`` for apimachinery's
  specially-encoded types; otherwise a message name, written without its
  package when it is in the entry's own package. ``[]T`` is a repeated field;
  ``{T}`` a map from string keys (map entries are messages with key 1, value 2);
  ``{[]s}`` a map whose values are wrapper messages holding ``repeated string
  items = 1`` (authentication's ExtraValue).
FLAGS (the Go field's shape, which decides how a zero value reads in JSON)
  ``*`` the Go field is a pointer: a zero value on the wire is meaningful;
  ``e`` the JSON tag has ``omitempty``; ``z`` it has ``omitzero``;
  ``-`` the Go field is embedded inline: its message's properties belong to
  the enclosing JSON object (``Volume`` holds ``VolumeSource`` at field 2).
  JSONNAME is empty for inline fields.

Covers every message reachable from the kinds in
``k8py.api.registry.BUILTIN_KINDS``, plus autoscaling/v1 Scale, policy/v1
Eviction, meta/v1 DeleteOptions, authentication/v1 TokenRequest, TokenReview
and SelfSubjectReview, and authorization/v1's access and rules reviews.

Provenance: field numbers, JSON names and Go shapes are those of the Kubernetes
v1.37 API types' struct tags (``protobuf:"..."`` and ``json:"..."``, the input
go-to-protobuf turns into each group's generated.proto), read mechanically from
the reflection data of kubectl v1.37.1; a sample was compared with the upstream
generated.proto files. Where a tag's wire type disagrees with the Go type (a few
old tags say ``bytes`` for an int32 or bool), the Go type is what the generated
proto, and so the wire, uses. Property names and types are checked against our
OpenAPI definitions by ``tests/api/test_protobuf.py``.
"""

from __future__ import annotations

MESSAGES: dict[str, str] = {
    # admissionregistration/v1: from the v1.37 Go types' protobuf tags (generated.proto)
    "admissionregistration/v1.ApplyConfiguration": "1:expression:s:e",
    "admissionregistration/v1.AuditAnnotation": "1:key:s 2:valueExpression:s",
    "admissionregistration/v1.ExpressionWarning": "2:fieldRef:s 3:warning:s",
    "admissionregistration/v1.JSONPatch": "1:expression:s:e",
    "admissionregistration/v1.MatchCondition": "1:name:s 2:expression:s",
    "admissionregistration/v1.MatchResources": (
        "1:namespaceSelector:meta/v1.LabelSelector:*e 2:objectSelector:meta/v1.LabelSelector:*e "
        "3:resourceRules:[]NamedRuleWithOperations:e 4:excludeResourceRules:[]NamedRuleWithOperations:e "
        "7:matchPolicy:s:*e"
    ),
    "admissionregistration/v1.MutatingAdmissionPolicy": (
        "1:metadata:meta/v1.ObjectMeta:e 2:spec:MutatingAdmissionPolicySpec:e"
    ),
    "admissionregistration/v1.MutatingAdmissionPolicyBinding": (
        "1:metadata:meta/v1.ObjectMeta:e 2:spec:MutatingAdmissionPolicyBindingSpec:e"
    ),
    "admissionregistration/v1.MutatingAdmissionPolicyBindingSpec": (
        "1:policyName:s:e 2:paramRef:ParamRef:*e 3:matchResources:MatchResources:*e"
    ),
    "admissionregistration/v1.MutatingAdmissionPolicySpec": (
        "1:paramKind:ParamKind:*e 2:matchConstraints:MatchResources:*e 3:variables:[]Variable:e "
        "4:mutations:[]Mutation:e 5:failurePolicy:s:*e 6:matchConditions:[]MatchCondition:e "
        "7:reinvocationPolicy:s:e"
    ),
    "admissionregistration/v1.Mutation": (
        "2:patchType:s 3:applyConfiguration:ApplyConfiguration:*e 4:jsonPatch:JSONPatch:*e"
    ),
    "admissionregistration/v1.MutatingWebhook": (
        "1:name:s 2:clientConfig:WebhookClientConfig 3:rules:[]RuleWithOperations:e 4:failurePolicy:s:*e "
        "9:matchPolicy:s:*e 5:namespaceSelector:meta/v1.LabelSelector:*e 11:objectSelector:meta/v1.LabelSelector:*e "
        "6:sideEffects:s:* 7:timeoutSeconds:i:*e 8:admissionReviewVersions:[]s 10:reinvocationPolicy:s:*e "
        "12:matchConditions:[]MatchCondition:e"
    ),
    "admissionregistration/v1.MutatingWebhookConfiguration": (
        "1:metadata:meta/v1.ObjectMeta:e 2:webhooks:[]MutatingWebhook:e"
    ),
    "admissionregistration/v1.NamedRuleWithOperations": "1:resourceNames:[]s:e 2::RuleWithOperations:-",
    "admissionregistration/v1.ParamKind": "1:apiVersion:s:e 2:kind:s:e",
    "admissionregistration/v1.ParamRef": (
        "1:name:s:e 2:namespace:s:e 3:selector:meta/v1.LabelSelector:*e 4:parameterNotFoundAction:s:*e"
    ),
    "admissionregistration/v1.Rule": (
        "1:apiGroups:[]s:e 2:apiVersions:[]s:e 3:resources:[]s:e 4:scope:s:*e"
    ),
    "admissionregistration/v1.RuleWithOperations": "1:operations:[]s:e 2::Rule:-",
    "admissionregistration/v1.ServiceReference": "1:namespace:s 2:name:s 3:path:s:*e 4:port:i:*e",
    "admissionregistration/v1.TypeChecking": "1:expressionWarnings:[]ExpressionWarning:e",
    "admissionregistration/v1.ValidatingAdmissionPolicy": (
        "1:metadata:meta/v1.ObjectMeta:e 2:spec:ValidatingAdmissionPolicySpec:e "
        "3:status:ValidatingAdmissionPolicyStatus:e"
    ),
    "admissionregistration/v1.ValidatingAdmissionPolicyBinding": (
        "1:metadata:meta/v1.ObjectMeta:e 2:spec:ValidatingAdmissionPolicyBindingSpec:e"
    ),
    "admissionregistration/v1.ValidatingAdmissionPolicyBindingSpec": (
        "1:policyName:s:e 2:paramRef:ParamRef:*e 3:matchResources:MatchResources:*e 4:validationActions:[]s:e"
    ),
    "admissionregistration/v1.ValidatingAdmissionPolicySpec": (
        "1:paramKind:ParamKind:*e 2:matchConstraints:MatchResources:*e 3:validations:[]Validation:e "
        "4:failurePolicy:s:*e 5:auditAnnotations:[]AuditAnnotation:e 6:matchConditions:[]MatchCondition:e "
        "7:variables:[]Variable:e"
    ),
    "admissionregistration/v1.ValidatingAdmissionPolicyStatus": (
        "1:observedGeneration:i:e 2:typeChecking:TypeChecking:*e 3:conditions:[]meta/v1.Condition:e"
    ),
    "admissionregistration/v1.ValidatingWebhook": (
        "1:name:s 2:clientConfig:WebhookClientConfig 3:rules:[]RuleWithOperations:e 4:failurePolicy:s:*e "
        "9:matchPolicy:s:*e 5:namespaceSelector:meta/v1.LabelSelector:*e 10:objectSelector:meta/v1.LabelSelector:*e "
        "6:sideEffects:s:* 7:timeoutSeconds:i:*e 8:admissionReviewVersions:[]s 11:matchConditions:[]MatchCondition:e"
    ),
    "admissionregistration/v1.ValidatingWebhookConfiguration": (
        "1:metadata:meta/v1.ObjectMeta:e 2:webhooks:[]ValidatingWebhook:e"
    ),
    "admissionregistration/v1.Validation": (
        "1:expression:s 2:message:s:e 3:reason:s:*e 4:messageExpression:s:e"
    ),
    "admissionregistration/v1.Variable": "1:name:s 2:expression:s",
    "admissionregistration/v1.WebhookClientConfig": "3:url:s:*e 1:service:ServiceReference:*e 2:caBundle:y:e",
    # apiregistration/v1 is kube-aggregator's, not in kubectl's binary: from its generated.proto
    "apiregistration/v1.APIService": (
        "1:metadata:meta/v1.ObjectMeta:e 2:spec:APIServiceSpec:e 3:status:APIServiceStatus:e"
    ),
    "apiregistration/v1.APIServiceCondition": (
        "1:type:s 2:status:s 3:lastTransitionTime:Time:e 4:reason:s:e 5:message:s:e"
    ),
    "apiregistration/v1.APIServiceSpec": (
        "1:service:ServiceReference:*e 2:group:s:e 3:version:s:e 4:insecureSkipTLSVerify:b:e 5:caBundle:y:e "
        "7:groupPriorityMinimum:i 8:versionPriority:i"
    ),
    "apiregistration/v1.APIServiceStatus": "1:conditions:[]APIServiceCondition:e",
    "apiregistration/v1.ServiceReference": "1:namespace:s:e 2:name:s:e 3:port:i:*e",
    "apps/v1.ControllerRevision": "1:metadata:meta/v1.ObjectMeta:e 2:data:RawExtension 3:revision:i",
    "apps/v1.DaemonSet": "1:metadata:meta/v1.ObjectMeta:e 2:spec:DaemonSetSpec:e 3:status:DaemonSetStatus:e",
    "apps/v1.DaemonSetCondition": (
        "1:type:s 2:status:s 3:lastTransitionTime:Time:e 4:reason:s:e 5:message:s:e"
    ),
    "apps/v1.DaemonSetSpec": (
        "1:selector:meta/v1.LabelSelector:* 2:template:core/v1.PodTemplateSpec "
        "3:updateStrategy:DaemonSetUpdateStrategy:e 4:minReadySeconds:i:e "
        "6:revisionHistoryLimit:i:*e"
    ),
    "apps/v1.DaemonSetStatus": (
        "1:currentNumberScheduled:i 2:numberMisscheduled:i 3:desiredNumberScheduled:i "
        "4:numberReady:i 5:observedGeneration:i:e 6:updatedNumberScheduled:i:e "
        "7:numberAvailable:i:e 8:numberUnavailable:i:e 9:collisionCount:i:*e "
        "10:conditions:[]DaemonSetCondition:e"
    ),
    "apps/v1.DaemonSetUpdateStrategy": "1:type:s:e 2:rollingUpdate:RollingUpdateDaemonSet:*e",
    "apps/v1.Deployment": (
        "1:metadata:meta/v1.ObjectMeta:e 2:spec:DeploymentSpec:e 3:status:DeploymentStatus:e"
    ),
    "apps/v1.DeploymentCondition": (
        "1:type:s 2:status:s 6:lastUpdateTime:Time:e 7:lastTransitionTime:Time:e 4:reason:s:e "
        "5:message:s:e"
    ),
    "apps/v1.DeploymentSpec": (
        "1:replicas:i:*e 2:selector:meta/v1.LabelSelector:* 3:template:core/v1.PodTemplateSpec "
        "4:strategy:DeploymentStrategy:e 5:minReadySeconds:i:e 6:revisionHistoryLimit:i:*e "
        "7:paused:b:e 9:progressDeadlineSeconds:i:*e"
    ),
    "apps/v1.DeploymentStatus": (
        "1:observedGeneration:i:e 2:replicas:i:e 3:updatedReplicas:i:e 7:readyReplicas:i:e "
        "4:availableReplicas:i:e 5:unavailableReplicas:i:e 9:terminatingReplicas:i:*e "
        "6:conditions:[]DeploymentCondition:e 8:collisionCount:i:*e"
    ),
    "apps/v1.DeploymentStrategy": "1:type:s:e 2:rollingUpdate:RollingUpdateDeployment:*e",
    "apps/v1.ReplicaSet": (
        "1:metadata:meta/v1.ObjectMeta:e 2:spec:ReplicaSetSpec:e 3:status:ReplicaSetStatus:e"
    ),
    "apps/v1.ReplicaSetCondition": (
        "1:type:s 2:status:s 3:lastTransitionTime:Time:e 4:reason:s:e 5:message:s:e"
    ),
    "apps/v1.ReplicaSetSpec": (
        "1:replicas:i:*e 4:minReadySeconds:i:e 2:selector:meta/v1.LabelSelector:* "
        "3:template:core/v1.PodTemplateSpec:e"
    ),
    "apps/v1.ReplicaSetStatus": (
        "1:replicas:i 2:fullyLabeledReplicas:i:e 4:readyReplicas:i:e 5:availableReplicas:i:e "
        "7:terminatingReplicas:i:*e 3:observedGeneration:i:e 6:conditions:[]ReplicaSetCondition:e"
    ),
    "apps/v1.RollingUpdateDaemonSet": "1:maxUnavailable:IntOrString:*e 2:maxSurge:IntOrString:*e",
    "apps/v1.RollingUpdateDeployment": "1:maxUnavailable:IntOrString:*e 2:maxSurge:IntOrString:*e",
    "apps/v1.RollingUpdateStatefulSetStrategy": "1:partition:i:*e 2:maxUnavailable:IntOrString:*e",
    "apps/v1.StatefulSet": (
        "1:metadata:meta/v1.ObjectMeta:e 2:spec:StatefulSetSpec:e 3:status:StatefulSetStatus:e"
    ),
    "apps/v1.StatefulSetCondition": (
        "1:type:s 2:status:s 3:lastTransitionTime:Time:e 4:reason:s:e 5:message:s:e"
    ),
    "apps/v1.StatefulSetOrdinals": "1:start:i",
    "apps/v1.StatefulSetPersistentVolumeClaimRetentionPolicy": "1:whenDeleted:s:e 2:whenScaled:s:e",
    "apps/v1.StatefulSetSpec": (
        "1:replicas:i:*e 2:selector:meta/v1.LabelSelector:* 3:template:core/v1.PodTemplateSpec "
        "4:volumeClaimTemplates:[]core/v1.PersistentVolumeClaim:e 5:serviceName:s "
        "6:podManagementPolicy:s:e 7:updateStrategy:StatefulSetUpdateStrategy:e "
        "8:revisionHistoryLimit:i:*e 9:minReadySeconds:i:e "
        "10:persistentVolumeClaimRetentionPolicy:StatefulSetPersistentVolumeClaimRetentionPolicy:*e "
        "11:ordinals:StatefulSetOrdinals:*e"
    ),
    "apps/v1.StatefulSetStatus": (
        "1:observedGeneration:i:e 2:replicas:i 3:readyReplicas:i:e 4:currentReplicas:i:e "
        "5:updatedReplicas:i:e 6:currentRevision:s:e 7:updateRevision:s:e 9:collisionCount:i:*e "
        "10:conditions:[]StatefulSetCondition:e 11:availableReplicas:i"
    ),
    "apps/v1.StatefulSetUpdateStrategy": "1:type:s:e 2:rollingUpdate:RollingUpdateStatefulSetStrategy:*e",
    "authentication/v1.BoundObjectReference": "1:kind:s:e 2:apiVersion:s:e 3:name:s:e 4:uid:s:e",
    "authentication/v1.SelfSubjectReview": (
        "1:metadata:meta/v1.ObjectMeta:e 2:status:SelfSubjectReviewStatus:e"
    ),
    "authentication/v1.SelfSubjectReviewStatus": "1:userInfo:UserInfo:e",
    "authentication/v1.TokenRequest": (
        "1:metadata:meta/v1.ObjectMeta:e 2:spec:TokenRequestSpec 3:status:TokenRequestStatus:e"
    ),
    "authentication/v1.TokenRequestSpec": (
        "1:audiences:[]s 4:expirationSeconds:i:* 3:boundObjectRef:BoundObjectReference:* "
        "5:attestations:{[]s}:e"
    ),
    "authentication/v1.TokenRequestStatus": "1:token:s 2:expirationTimestamp:Time",
    "authentication/v1.TokenReview": (
        "1:metadata:meta/v1.ObjectMeta:e 2:spec:TokenReviewSpec 3:status:TokenReviewStatus:e"
    ),
    "authentication/v1.TokenReviewSpec": "1:token:s:e 2:audiences:[]s:e",
    "authentication/v1.TokenReviewStatus": (
        "1:authenticated:b:e 2:user:UserInfo:e 4:audiences:[]s:e 3:error:s:e"
    ),
    "authentication/v1.UserInfo": "1:username:s:e 2:uid:s:e 3:groups:[]s:e 4:extra:{[]s}:e",
    "authorization/v1.FieldSelectorAttributes": (
        "1:rawSelector:s:e 2:requirements:[]meta/v1.FieldSelectorRequirement:e"
    ),
    "authorization/v1.LabelSelectorAttributes": (
        "1:rawSelector:s:e 2:requirements:[]meta/v1.LabelSelectorRequirement:e"
    ),
    "authorization/v1.LocalSubjectAccessReview": (
        "1:metadata:meta/v1.ObjectMeta:e 2:spec:SubjectAccessReviewSpec "
        "3:status:SubjectAccessReviewStatus:e"
    ),
    "authorization/v1.NonResourceAttributes": "1:path:s:e 2:verb:s:e",
    "authorization/v1.NonResourceRule": "1:verbs:[]s 2:nonResourceURLs:[]s:e",
    "authorization/v1.ResourceAttributes": (
        "1:namespace:s:e 2:verb:s:e 3:group:s:e 4:version:s:e 5:resource:s:e 6:subresource:s:e "
        "7:name:s:e 8:fieldSelector:FieldSelectorAttributes:*e "
        "9:labelSelector:LabelSelectorAttributes:*e"
    ),
    "authorization/v1.ResourceRule": "1:verbs:[]s 2:apiGroups:[]s:e 3:resources:[]s:e 4:resourceNames:[]s:e",
    "authorization/v1.SelfSubjectAccessReview": (
        "1:metadata:meta/v1.ObjectMeta:e 2:spec:SelfSubjectAccessReviewSpec "
        "3:status:SubjectAccessReviewStatus:e"
    ),
    "authorization/v1.SelfSubjectAccessReviewSpec": (
        "1:resourceAttributes:ResourceAttributes:*e "
        "2:nonResourceAttributes:NonResourceAttributes:*e"
    ),
    "authorization/v1.SelfSubjectRulesReview": (
        "1:metadata:meta/v1.ObjectMeta:e 2:spec:SelfSubjectRulesReviewSpec "
        "3:status:SubjectRulesReviewStatus:e"
    ),
    "authorization/v1.SelfSubjectRulesReviewSpec": "1:namespace:s:e",
    "authorization/v1.SubjectAccessReview": (
        "1:metadata:meta/v1.ObjectMeta:e 2:spec:SubjectAccessReviewSpec "
        "3:status:SubjectAccessReviewStatus:e"
    ),
    "authorization/v1.SubjectAccessReviewSpec": (
        "1:resourceAttributes:ResourceAttributes:*e "
        "2:nonResourceAttributes:NonResourceAttributes:*e 3:user:s:e 4:groups:[]s:e 5:extra:{[]s}:e "
        "6:uid:s:e"
    ),
    "authorization/v1.SubjectAccessReviewStatus": (
        "1:allowed:b 4:denied:b:e 2:reason:s:e 3:evaluationError:s:e"
    ),
    "authorization/v1.SubjectRulesReviewStatus": (
        "1:resourceRules:[]ResourceRule 2:nonResourceRules:[]NonResourceRule 3:incomplete:b "
        "4:evaluationError:s:e"
    ),
    "autoscaling/v1.CrossVersionObjectReference": "1:kind:s 2:name:s 3:apiVersion:s:e",
    "autoscaling/v1.HorizontalPodAutoscaler": (
        "1:metadata:meta/v1.ObjectMeta:e 2:spec:HorizontalPodAutoscalerSpec:e "
        "3:status:HorizontalPodAutoscalerStatus:e"
    ),
    "autoscaling/v1.HorizontalPodAutoscalerSpec": (
        "1:scaleTargetRef:CrossVersionObjectReference 2:minReplicas:i:*e 3:maxReplicas:i "
        "4:targetCPUUtilizationPercentage:i:*e"
    ),
    "autoscaling/v1.HorizontalPodAutoscalerStatus": (
        "1:observedGeneration:i:*e 2:lastScaleTime:Time:*e 3:currentReplicas:i 4:desiredReplicas:i "
        "5:currentCPUUtilizationPercentage:i:*e"
    ),
    "autoscaling/v1.Scale": "1:metadata:meta/v1.ObjectMeta:e 2:spec:ScaleSpec:e 3:status:ScaleStatus:e",
    "autoscaling/v1.ScaleSpec": "1:replicas:i:e",
    "autoscaling/v1.ScaleStatus": "1:replicas:i 2:selector:s:e",
    "autoscaling/v2.ContainerResourceMetricSource": "1:name:s 2:target:MetricTarget 3:container:s",
    "autoscaling/v2.ContainerResourceMetricStatus": "1:name:s 2:current:MetricValueStatus 3:container:s",
    "autoscaling/v2.CrossVersionObjectReference": "1:kind:s 2:name:s 3:apiVersion:s:e",
    "autoscaling/v2.ExternalMetricSource": "1:metric:MetricIdentifier 2:target:MetricTarget",
    "autoscaling/v2.ExternalMetricStatus": "1:metric:MetricIdentifier 2:current:MetricValueStatus",
    "autoscaling/v2.HPAScalingPolicy": "1:type:s 2:value:i 3:periodSeconds:i",
    "autoscaling/v2.HPAScalingRules": (
        "3:stabilizationWindowSeconds:i:*e 1:selectPolicy:s:*e 2:policies:[]HPAScalingPolicy:e "
        "4:tolerance:Quantity:*e"
    ),
    "autoscaling/v2.HorizontalPodAutoscaler": (
        "1:metadata:meta/v1.ObjectMeta:e 2:spec:HorizontalPodAutoscalerSpec:e "
        "3:status:HorizontalPodAutoscalerStatus:e"
    ),
    "autoscaling/v2.HorizontalPodAutoscalerBehavior": (
        "1:scaleUp:HPAScalingRules:*e 2:scaleDown:HPAScalingRules:*e"
    ),
    "autoscaling/v2.HorizontalPodAutoscalerCondition": (
        "1:type:s 2:status:s 3:lastTransitionTime:Time:e 4:reason:s:e 5:message:s:e "
        "6:observedGeneration:i:*e"
    ),
    "autoscaling/v2.HorizontalPodAutoscalerSpec": (
        "1:scaleTargetRef:CrossVersionObjectReference 2:minReplicas:i:*e 3:maxReplicas:i "
        "4:metrics:[]MetricSpec:e 5:behavior:HorizontalPodAutoscalerBehavior:*e"
    ),
    "autoscaling/v2.HorizontalPodAutoscalerStatus": (
        "1:observedGeneration:i:*e 2:lastScaleTime:Time:*e 3:currentReplicas:i:e "
        "4:desiredReplicas:i 5:currentMetrics:[]MetricStatus "
        "6:conditions:[]HorizontalPodAutoscalerCondition:e"
    ),
    "autoscaling/v2.MetricIdentifier": "1:name:s 2:selector:meta/v1.LabelSelector:*e",
    "autoscaling/v2.MetricSpec": (
        "1:type:s 2:object:ObjectMetricSource:*e 3:pods:PodsMetricSource:*e "
        "4:resource:ResourceMetricSource:*e 7:containerResource:ContainerResourceMetricSource:*e "
        "5:external:ExternalMetricSource:*e"
    ),
    "autoscaling/v2.MetricStatus": (
        "1:type:s 2:object:ObjectMetricStatus:*e 3:pods:PodsMetricStatus:*e "
        "4:resource:ResourceMetricStatus:*e 7:containerResource:ContainerResourceMetricStatus:*e "
        "5:external:ExternalMetricStatus:*e"
    ),
    "autoscaling/v2.MetricTarget": (
        "1:type:s 2:value:Quantity:*e 3:averageValue:Quantity:*e 4:averageUtilization:i:*e"
    ),
    "autoscaling/v2.MetricValueStatus": (
        "1:value:Quantity:*e 2:averageValue:Quantity:*e 3:averageUtilization:i:*e"
    ),
    "autoscaling/v2.ObjectMetricSource": (
        "1:describedObject:CrossVersionObjectReference 2:target:MetricTarget "
        "3:metric:MetricIdentifier"
    ),
    "autoscaling/v2.ObjectMetricStatus": (
        "1:metric:MetricIdentifier 2:current:MetricValueStatus "
        "3:describedObject:CrossVersionObjectReference"
    ),
    "autoscaling/v2.PodsMetricSource": "1:metric:MetricIdentifier 2:target:MetricTarget",
    "autoscaling/v2.PodsMetricStatus": "1:metric:MetricIdentifier 2:current:MetricValueStatus",
    "autoscaling/v2.ResourceMetricSource": "1:name:s 2:target:MetricTarget",
    "autoscaling/v2.ResourceMetricStatus": "1:name:s 2:current:MetricValueStatus",
    "batch/v1.CronJob": "1:metadata:meta/v1.ObjectMeta:e 2:spec:CronJobSpec:e 3:status:CronJobStatus:e",
    "batch/v1.CronJobSpec": (
        "1:schedule:s 8:timeZone:s:*e 2:startingDeadlineSeconds:i:*e 3:concurrencyPolicy:s:e "
        "4:suspend:b:*e 5:jobTemplate:JobTemplateSpec 6:successfulJobsHistoryLimit:i:*e "
        "7:failedJobsHistoryLimit:i:*e"
    ),
    "batch/v1.CronJobStatus": (
        "1:active:[]core/v1.ObjectReference:e 4:lastScheduleTime:Time:*e "
        "5:lastSuccessfulTime:Time:*e"
    ),
    "batch/v1.Job": "1:metadata:meta/v1.ObjectMeta:e 2:spec:JobSpec:e 3:status:JobStatus:e",
    "batch/v1.JobCondition": (
        "1:type:s 2:status:s 3:lastProbeTime:Time:e 4:lastTransitionTime:Time:e 5:reason:s:e "
        "6:message:s:e"
    ),
    "batch/v1.JobSchedulingConfiguration": (
        "1:schedulingPolicy:scheduling/v1alpha3.WorkloadPodGroupSchedulingPolicy:*e "
        "2:schedulingConstraints:scheduling/v1alpha3.WorkloadPodGroupSchedulingConstraints:*e "
        "3:disruptionMode:scheduling/v1alpha3.WorkloadPodGroupDisruptionMode:*e "
        "4:resourceClaims:[]scheduling/v1alpha3.WorkloadPodGroupResourceClaim:e"
    ),
    "batch/v1.JobSpec": (
        "1:parallelism:i:*e 2:completions:i:*e 3:activeDeadlineSeconds:i:*e "
        "11:podFailurePolicy:PodFailurePolicy:*e 16:successPolicy:SuccessPolicy:*e "
        "7:backoffLimit:i:*e 12:backoffLimitPerIndex:i:*e 13:maxFailedIndexes:i:*e "
        "4:selector:meta/v1.LabelSelector:*e 5:manualSelector:b:*e "
        "6:template:core/v1.PodTemplateSpec 8:ttlSecondsAfterFinished:i:*e 9:completionMode:s:*e "
        "10:suspend:b:*e 14:podReplacementPolicy:s:*e 15:managedBy:s:*e "
        "17:scheduling:JobSchedulingConfiguration:*e"
    ),
    "batch/v1.JobStatus": (
        "1:conditions:[]JobCondition:e 2:startTime:Time:*e 3:completionTime:Time:*e 4:active:i:e "
        "5:succeeded:i:e 6:failed:i:e 11:terminating:i:*e 7:completedIndexes:s:e "
        "10:failedIndexes:s:*e 8:uncountedTerminatedPods:UncountedTerminatedPods:*e 9:ready:i:*e"
    ),
    "batch/v1.JobTemplateSpec": "1:metadata:meta/v1.ObjectMeta:e 2:spec:JobSpec:e",
    "batch/v1.PodFailurePolicy": "1:rules:[]PodFailurePolicyRule",
    "batch/v1.PodFailurePolicyOnExitCodesRequirement": "1:containerName:s:*e 2:operator:s 3:values:[]i",
    "batch/v1.PodFailurePolicyOnPodConditionsPattern": "1:type:s 2:status:s",
    "batch/v1.PodFailurePolicyRule": (
        "1:action:s 2:onExitCodes:PodFailurePolicyOnExitCodesRequirement:*e "
        "3:onPodConditions:[]PodFailurePolicyOnPodConditionsPattern:e"
    ),
    "batch/v1.SuccessPolicy": "1:rules:[]SuccessPolicyRule",
    "batch/v1.SuccessPolicyRule": "1:succeededIndexes:s:*e 2:succeededCount:i:*e",
    "batch/v1.UncountedTerminatedPods": "1:succeeded:[]s:e 2:failed:[]s:e",
    "certificates/v1.CertificateSigningRequest": (
        "1:metadata:meta/v1.ObjectMeta:e 2:spec:CertificateSigningRequestSpec 3:status:CertificateSigningRequestStatus:e"
    ),
    "certificates/v1.CertificateSigningRequestCondition": (
        "1:type:s 6:status:s 2:reason:s:e 3:message:s:e 4:lastUpdateTime:Time:e 5:lastTransitionTime:Time:e"
    ),
    "certificates/v1.CertificateSigningRequestSpec": (
        "1:request:y 7:signerName:s 8:expirationSeconds:i:*e 5:usages:[]s:e 2:username:s:e 3:uid:s:e "
        "4:groups:[]s:e 6:extra:{[]s}:e"
    ),
    "certificates/v1.CertificateSigningRequestStatus": (
        "1:conditions:[]CertificateSigningRequestCondition:e 2:certificate:y:e"
    ),
    "coordination/v1.Lease": "1:metadata:meta/v1.ObjectMeta:e 2:spec:LeaseSpec:e",
    "coordination/v1.LeaseSpec": (
        "1:holderIdentity:s:*e 2:leaseDurationSeconds:i:*e 3:acquireTime:MicroTime:*e "
        "4:renewTime:MicroTime:*e 5:leaseTransitions:i:*e 6:strategy:s:*e 7:preferredHolder:s:*e"
    ),
    "core/v1.AWSElasticBlockStoreVolumeSource": "1:volumeID:s 2:fsType:s:e 3:partition:i:e 4:readOnly:b:e",
    "core/v1.Affinity": (
        "1:nodeAffinity:NodeAffinity:*e 2:podAffinity:PodAffinity:*e "
        "3:podAntiAffinity:PodAntiAffinity:*e"
    ),
    "core/v1.AppArmorProfile": "1:type:s 2:localhostProfile:s:*e",
    "core/v1.AttachedVolume": "1:name:s 2:devicePath:s",
    "core/v1.AzureDiskVolumeSource": (
        "1:diskName:s 2:diskURI:s 3:cachingMode:s:*e 4:fsType:s:*e 5:readOnly:b:*e 6:kind:s:*e"
    ),
    "core/v1.AzureFilePersistentVolumeSource": (
        "1:secretName:s 2:shareName:s 3:readOnly:b:e 4:secretNamespace:s:*"
    ),
    "core/v1.AzureFileVolumeSource": "1:secretName:s 2:shareName:s 3:readOnly:b:e",
    "core/v1.Binding": "1:metadata:meta/v1.ObjectMeta:e 2:target:ObjectReference",
    "core/v1.CSIPersistentVolumeSource": (
        "1:driver:s 2:volumeHandle:s 3:readOnly:b:e 4:fsType:s:e 5:volumeAttributes:{s}:e "
        "6:controllerPublishSecretRef:SecretReference:*e 7:nodeStageSecretRef:SecretReference:*e "
        "8:nodePublishSecretRef:SecretReference:*e 9:controllerExpandSecretRef:SecretReference:*e "
        "10:nodeExpandSecretRef:SecretReference:*e"
    ),
    "core/v1.CSIVolumeSource": (
        "1:driver:s 2:readOnly:b:*e 3:fsType:s:*e 4:volumeAttributes:{s}:e "
        "5:nodePublishSecretRef:LocalObjectReference:*e"
    ),
    "core/v1.Capabilities": "1:add:[]s:e 2:drop:[]s:e",
    "core/v1.CephFSPersistentVolumeSource": (
        "1:monitors:[]s 2:path:s:e 3:user:s:e 4:secretFile:s:e 5:secretRef:SecretReference:*e "
        "6:readOnly:b:e"
    ),
    "core/v1.CephFSVolumeSource": (
        "1:monitors:[]s 2:path:s:e 3:user:s:e 4:secretFile:s:e 5:secretRef:LocalObjectReference:*e "
        "6:readOnly:b:e"
    ),
    "core/v1.CinderPersistentVolumeSource": (
        "1:volumeID:s 2:fsType:s:e 3:readOnly:b:e 4:secretRef:SecretReference:*e"
    ),
    "core/v1.CinderVolumeSource": (
        "1:volumeID:s 2:fsType:s:e 3:readOnly:b:e 4:secretRef:LocalObjectReference:*e"
    ),
    "core/v1.ClientIPConfig": "1:timeoutSeconds:i:*e",
    "core/v1.ClusterTrustBundleProjection": (
        "1:name:s:*e 2:signerName:s:*e 3:labelSelector:meta/v1.LabelSelector:*e 5:optional:b:*e "
        "4:path:s 6:user:i:*e"
    ),
    "core/v1.ComponentCondition": "1:type:s 2:status:s 3:message:s:e 4:error:s:e",
    "core/v1.ComponentStatus": "1:metadata:meta/v1.ObjectMeta:e 2:conditions:[]ComponentCondition:e",
    "core/v1.ConfigMap": "1:metadata:meta/v1.ObjectMeta:e 4:immutable:b:*e 2:data:{s}:e 3:binaryData:{y}:e",
    "core/v1.ConfigMapEnvSource": "1::LocalObjectReference:- 2:optional:b:*e",
    "core/v1.ConfigMapKeySelector": "1::LocalObjectReference:- 2:key:s 3:optional:b:*e",
    "core/v1.ConfigMapNodeConfigSource": (
        "1:namespace:s 2:name:s 3:uid:s:e 4:resourceVersion:s:e 5:kubeletConfigKey:s"
    ),
    "core/v1.ConfigMapProjection": "1::LocalObjectReference:- 2:items:[]KeyToPath:e 4:optional:b:*e",
    "core/v1.ConfigMapVolumeSource": (
        "1::LocalObjectReference:- 2:items:[]KeyToPath:e 3:defaultMode:i:*e 4:optional:b:*e "
        "5:defaultUser:i:*e"
    ),
    "core/v1.Container": (
        "1:name:s 2:image:s:e 3:command:[]s:e 4:args:[]s:e 5:workingDir:s:e "
        "6:ports:[]ContainerPort:e 19:envFrom:[]EnvFromSource:e 7:env:[]EnvVar:e "
        "8:resources:ResourceRequirements:e 23:resizePolicy:[]ContainerResizePolicy:e "
        "24:restartPolicy:s:*e 25:restartPolicyRules:[]ContainerRestartRule:e "
        "9:volumeMounts:[]VolumeMount:e 21:volumeDevices:[]VolumeDevice:e 10:livenessProbe:Probe:*e "
        "11:readinessProbe:Probe:*e 22:startupProbe:Probe:*e 12:lifecycle:Lifecycle:*e "
        "13:terminationMessagePath:s:e 20:terminationMessagePolicy:s:e 14:imagePullPolicy:s:e "
        "15:securityContext:SecurityContext:*e 16:stdin:b:e 17:stdinOnce:b:e 18:tty:b:e"
    ),
    "core/v1.ContainerExtendedResourceRequest": "1:containerName:s 2:resourceName:s 3:requestName:s",
    "core/v1.ContainerImage": "1:names:[]s 2:sizeBytes:i:e",
    "core/v1.ContainerPort": "1:name:s:e 2:hostPort:i:e 3:containerPort:i 4:protocol:s:e 5:hostIP:s:e",
    "core/v1.ContainerResizePolicy": "1:resourceName:s 2:restartPolicy:s",
    "core/v1.ContainerRestartRule": "1:action:s:e 2:exitCodes:ContainerRestartRuleOnExitCodes:*e",
    "core/v1.ContainerRestartRuleOnExitCodes": "1:operator:s:e 2:values:[]i:e",
    "core/v1.ContainerState": (
        "1:waiting:ContainerStateWaiting:*e 2:running:ContainerStateRunning:*e "
        "3:terminated:ContainerStateTerminated:*e"
    ),
    "core/v1.ContainerStateRunning": "1:startedAt:Time:e",
    "core/v1.ContainerStateTerminated": (
        "1:exitCode:i 2:signal:i:e 3:reason:s:e 4:message:s:e 5:startedAt:Time:e "
        "6:finishedAt:Time:e 7:containerID:s:e"
    ),
    "core/v1.ContainerStateWaiting": "1:reason:s:e 2:message:s:e",
    "core/v1.ContainerStatus": (
        "1:name:s 2:state:ContainerState:e 3:lastState:ContainerState:e 4:ready:b 5:restartCount:i "
        "6:image:s 7:imageID:s 8:containerID:s:e 9:started:b:*e 10:allocatedResources:{Quantity}:e "
        "11:resources:ResourceRequirements:*e 12:volumeMounts:[]VolumeMountStatus:e "
        "13:user:ContainerUser:*e 14:allocatedResourcesStatus:[]ResourceStatus:e 15:stopSignal:s:*e"
    ),
    "core/v1.ContainerUser": "1:linux:LinuxContainerUser:*e",
    "core/v1.DaemonEndpoint": "1:Port:i",
    "core/v1.DownwardAPIProjection": "1:items:[]DownwardAPIVolumeFile:e",
    "core/v1.DownwardAPIVolumeFile": (
        "1:path:s 2:fieldRef:ObjectFieldSelector:*e 3:resourceFieldRef:ResourceFieldSelector:*e "
        "4:mode:i:*e 5:user:i:*e"
    ),
    "core/v1.DownwardAPIVolumeSource": (
        "1:items:[]DownwardAPIVolumeFile:e 2:defaultMode:i:*e 3:defaultUser:i:*e"
    ),
    "core/v1.EmptyDirVolumeSource": "1:medium:s:e 2:sizeLimit:Quantity:*e 3:mode:i:*e",
    "core/v1.EndpointAddress": "1:ip:s 3:hostname:s:e 4:nodeName:s:*e 2:targetRef:ObjectReference:*e",
    "core/v1.EndpointPort": "1:name:s:e 2:port:i 3:protocol:s:e 4:appProtocol:s:*e",
    "core/v1.EndpointSubset": (
        "1:addresses:[]EndpointAddress:e 2:notReadyAddresses:[]EndpointAddress:e "
        "3:ports:[]EndpointPort:e"
    ),
    "core/v1.Endpoints": "1:metadata:meta/v1.ObjectMeta:e 2:subsets:[]EndpointSubset:e",
    "core/v1.EnvFromSource": (
        "1:prefix:s:e 2:configMapRef:ConfigMapEnvSource:*e 3:secretRef:SecretEnvSource:*e"
    ),
    "core/v1.EnvVar": "1:name:s 2:value:s:e 3:valueFrom:EnvVarSource:*e",
    "core/v1.EnvVarSource": (
        "1:fieldRef:ObjectFieldSelector:*e 2:resourceFieldRef:ResourceFieldSelector:*e "
        "3:configMapKeyRef:ConfigMapKeySelector:*e 4:secretKeyRef:SecretKeySelector:*e "
        "5:fileKeyRef:FileKeySelector:*e"
    ),
    "core/v1.EphemeralContainer": "1::EphemeralContainerCommon:- 2:targetContainerName:s:e",
    "core/v1.EphemeralContainerCommon": (
        "1:name:s 2:image:s:e 3:command:[]s:e 4:args:[]s:e 5:workingDir:s:e "
        "6:ports:[]ContainerPort:e 19:envFrom:[]EnvFromSource:e 7:env:[]EnvVar:e "
        "8:resources:ResourceRequirements:e 23:resizePolicy:[]ContainerResizePolicy:e "
        "24:restartPolicy:s:*e 25:restartPolicyRules:[]ContainerRestartRule:e "
        "9:volumeMounts:[]VolumeMount:e 21:volumeDevices:[]VolumeDevice:e 10:livenessProbe:Probe:*e "
        "11:readinessProbe:Probe:*e 22:startupProbe:Probe:*e 12:lifecycle:Lifecycle:*e "
        "13:terminationMessagePath:s:e 20:terminationMessagePolicy:s:e 14:imagePullPolicy:s:e "
        "15:securityContext:SecurityContext:*e 16:stdin:b:e 17:stdinOnce:b:e 18:tty:b:e"
    ),
    "core/v1.EphemeralVolumeSource": "1:volumeClaimTemplate:PersistentVolumeClaimTemplate:*e",
    "core/v1.Event": (
        "1:metadata:meta/v1.ObjectMeta 2:involvedObject:ObjectReference 3:reason:s:e 4:message:s:e "
        "5:source:EventSource:e 6:firstTimestamp:Time:e 7:lastTimestamp:Time:e 8:count:i:e "
        "9:type:s:e 10:eventTime:MicroTime:e 11:series:EventSeries:*e 12:action:s:e "
        "13:related:ObjectReference:*e 14:reportingComponent:s 15:reportingInstance:s"
    ),
    "core/v1.EventSeries": "1:count:i:e 2:lastObservedTime:MicroTime:e",
    "core/v1.EventSource": "1:component:s:e 2:host:s:e",
    "core/v1.EvictionResponder": "1:name:s 2:priority:i:*",
    "core/v1.ExecAction": "1:command:[]s:e",
    "core/v1.FCVolumeSource": "1:targetWWNs:[]s:e 2:lun:i:*e 3:fsType:s:e 4:readOnly:b:e 5:wwids:[]s:e",
    "core/v1.FileKeySelector": "1:volumeName:s 2:path:s 3:key:s 4:optional:b:*e",
    "core/v1.FlexPersistentVolumeSource": (
        "1:driver:s 2:fsType:s:e 3:secretRef:SecretReference:*e 4:readOnly:b:e 5:options:{s}:e"
    ),
    "core/v1.FlexVolumeSource": (
        "1:driver:s 2:fsType:s:e 3:secretRef:LocalObjectReference:*e 4:readOnly:b:e 5:options:{s}:e"
    ),
    "core/v1.FlockerVolumeSource": "1:datasetName:s:e 2:datasetUUID:s:e",
    "core/v1.GCEPersistentDiskVolumeSource": "1:pdName:s 2:fsType:s:e 3:partition:i:e 4:readOnly:b:e",
    "core/v1.GRPCAction": "1:port:i 2:service:s:* 3:mode:s:*e",
    "core/v1.GitRepoVolumeSource": "1:repository:s 2:revision:s:e 3:directory:s:e",
    "core/v1.GlusterfsPersistentVolumeSource": (
        "1:endpoints:s 2:path:s 3:readOnly:b:e 4:endpointsNamespace:s:*e"
    ),
    "core/v1.GlusterfsVolumeSource": "1:endpoints:s 2:path:s 3:readOnly:b:e",
    "core/v1.HTTPGetAction": (
        "1:path:s:e 2:port:IntOrString 3:host:s:e 4:scheme:s:e 5:httpHeaders:[]HTTPHeader:e "
        "6:protocol:s:*e"
    ),
    "core/v1.HTTPHeader": "1:name:s 2:value:s",
    "core/v1.HostAlias": "1:ip:s 2:hostnames:[]s:e",
    "core/v1.HostIP": "1:ip:s",
    "core/v1.HostPathVolumeSource": "1:path:s 2:type:s:*e",
    "core/v1.ISCSIPersistentVolumeSource": (
        "1:targetPortal:s 2:iqn:s 3:lun:i 4:iscsiInterface:s:e 5:fsType:s:e 6:readOnly:b:e "
        "7:portals:[]s:e 8:chapAuthDiscovery:b:e 11:chapAuthSession:b:e "
        "10:secretRef:SecretReference:*e 12:initiatorName:s:*e"
    ),
    "core/v1.ISCSIVolumeSource": (
        "1:targetPortal:s 2:iqn:s 3:lun:i 4:iscsiInterface:s:e 5:fsType:s:e 6:readOnly:b:e "
        "7:portals:[]s:e 8:chapAuthDiscovery:b:e 11:chapAuthSession:b:e "
        "10:secretRef:LocalObjectReference:*e 12:initiatorName:s:*e"
    ),
    "core/v1.ImageVolumeSource": "1:reference:s:e 2:pullPolicy:s:e",
    "core/v1.ImageVolumeStatus": "1:imageRef:s:e",
    "core/v1.KeyToPath": "1:key:s 2:path:s 3:mode:i:*e 4:user:i:*e",
    "core/v1.Lifecycle": "1:postStart:LifecycleHandler:*e 2:preStop:LifecycleHandler:*e 3:stopSignal:s:*e",
    "core/v1.LifecycleHandler": (
        "1:exec:ExecAction:*e 2:httpGet:HTTPGetAction:*e 3:tcpSocket:TCPSocketAction:*e "
        "4:sleep:SleepAction:*e"
    ),
    "core/v1.LimitRange": "1:metadata:meta/v1.ObjectMeta:e 2:spec:LimitRangeSpec:e",
    "core/v1.LimitRangeItem": (
        "1:type:s 2:max:{Quantity}:e 3:min:{Quantity}:e 4:default:{Quantity}:e "
        "5:defaultRequest:{Quantity}:e 6:maxLimitRequestRatio:{Quantity}:e"
    ),
    "core/v1.LimitRangeSpec": "1:limits:[]LimitRangeItem",
    "core/v1.LinuxContainerUser": "1:uid:i 2:gid:i 3:supplementalGroups:[]i:e",
    "core/v1.LoadBalancerIngress": "1:ip:s:e 2:hostname:s:e 3:ipMode:s:*e 4:ports:[]PortStatus:e",
    "core/v1.LoadBalancerStatus": "1:ingress:[]LoadBalancerIngress:e",
    "core/v1.LocalObjectReference": "1:name:s:e",
    "core/v1.LocalVolumeSource": "1:path:s 2:fsType:s:*e",
    "core/v1.ModifyVolumeStatus": "1:targetVolumeAttributesClassName:s:e 2:status:s",
    "core/v1.NFSVolumeSource": "1:server:s 2:path:s 3:readOnly:b:e",
    "core/v1.Namespace": "1:metadata:meta/v1.ObjectMeta:e 2:spec:NamespaceSpec:e 3:status:NamespaceStatus:e",
    "core/v1.NamespaceCondition": (
        "1:type:s 2:status:s 4:lastTransitionTime:Time:e 5:reason:s:e 6:message:s:e"
    ),
    "core/v1.NamespaceSpec": "1:finalizers:[]s:e",
    "core/v1.NamespaceStatus": "1:phase:s:e 2:conditions:[]NamespaceCondition:e",
    "core/v1.Node": "1:metadata:meta/v1.ObjectMeta:e 2:spec:NodeSpec:e 3:status:NodeStatus:e",
    "core/v1.NodeAddress": "1:type:s 2:address:s",
    "core/v1.NodeAffinity": (
        "1:requiredDuringSchedulingIgnoredDuringExecution:NodeSelector:*e "
        "2:preferredDuringSchedulingIgnoredDuringExecution:[]PreferredSchedulingTerm:e"
    ),
    "core/v1.NodeAllocatableMappedResources": "1:name:s 2:quantity:Quantity:*",
    "core/v1.NodeAllocatableOverheadResources": "1:name:s 2:perPod:Quantity:*e 3:perContainer:Quantity:*e",
    "core/v1.NodeAllocatableResourceClaimStatus": (
        "1:resourceClaimName:s 2:containers:[]s:e 4:mapping:[]NodeAllocatableMappedResources:e "
        "5:overhead:[]NodeAllocatableOverheadResources:e"
    ),
    "core/v1.NodeCondition": (
        "1:type:s 2:status:s 3:lastHeartbeatTime:Time:e 4:lastTransitionTime:Time:e 5:reason:s:e "
        "6:message:s:e"
    ),
    "core/v1.NodeConfigSource": "2:configMap:ConfigMapNodeConfigSource:*e",
    "core/v1.NodeConfigStatus": (
        "1:assigned:NodeConfigSource:*e 2:active:NodeConfigSource:*e "
        "3:lastKnownGood:NodeConfigSource:*e 4:error:s:e"
    ),
    "core/v1.NodeDaemonEndpoints": "1:kubeletEndpoint:DaemonEndpoint:e",
    "core/v1.NodeFeatures": "1:supplementalGroupsPolicy:b:*e",
    "core/v1.NodePodPreemptionPolicy": "1:disableResizePreemption:[]s:e",
    "core/v1.NodeRuntimeHandler": "1:name:s 2:features:NodeRuntimeHandlerFeatures:*e",
    "core/v1.NodeRuntimeHandlerFeatures": "1:recursiveReadOnlyMounts:b:*e 2:userNamespaces:b:*e",
    "core/v1.NodeSelector": "1:nodeSelectorTerms:[]NodeSelectorTerm",
    "core/v1.NodeSelectorRequirement": "1:key:s 2:operator:s 3:values:[]s:e",
    "core/v1.NodeSelectorTerm": (
        "1:matchExpressions:[]NodeSelectorRequirement:e 2:matchFields:[]NodeSelectorRequirement:e"
    ),
    "core/v1.NodeSpec": (
        "1:podCIDR:s:e 7:podCIDRs:[]s:e 3:providerID:s:e 4:unschedulable:b:e 5:taints:[]Taint:e "
        "6:configSource:NodeConfigSource:*e 2:externalID:s:e "
        "8:podPreemptionPolicy:NodePodPreemptionPolicy:*e"
    ),
    "core/v1.NodeStatus": (
        "1:capacity:{Quantity}:e 2:allocatable:{Quantity}:e 3:phase:s:e "
        "4:conditions:[]NodeCondition:e 5:addresses:[]NodeAddress:e "
        "6:daemonEndpoints:NodeDaemonEndpoints:e 7:nodeInfo:NodeSystemInfo:e "
        "8:images:[]ContainerImage:e 9:volumesInUse:[]s:e 10:volumesAttached:[]AttachedVolume:e "
        "11:config:NodeConfigStatus:*e 12:runtimeHandlers:[]NodeRuntimeHandler:e "
        "13:features:NodeFeatures:*e 14:declaredFeatures:[]s:e"
    ),
    "core/v1.NodeSwapStatus": "1:capacity:i:*e",
    "core/v1.NodeSystemInfo": (
        "1:machineID:s 2:systemUUID:s 3:bootID:s 4:kernelVersion:s 5:osImage:s "
        "6:containerRuntimeVersion:s 7:kubeletVersion:s 8:kubeProxyVersion:s 9:operatingSystem:s "
        "10:architecture:s 11:swap:NodeSwapStatus:*e 12:runningInUserNamespace:b:*e"
    ),
    "core/v1.ObjectFieldSelector": "1:apiVersion:s:e 2:fieldPath:s",
    "core/v1.ObjectReference": (
        "1:kind:s:e 2:namespace:s:e 3:name:s:e 4:uid:s:e 5:apiVersion:s:e 6:resourceVersion:s:e "
        "7:fieldPath:s:e"
    ),
    "core/v1.PersistentVolume": (
        "1:metadata:meta/v1.ObjectMeta:e 2:spec:PersistentVolumeSpec:e "
        "3:status:PersistentVolumeStatus:e"
    ),
    "core/v1.PersistentVolumeClaim": (
        "1:metadata:meta/v1.ObjectMeta:e 2:spec:PersistentVolumeClaimSpec:e "
        "3:status:PersistentVolumeClaimStatus:e"
    ),
    "core/v1.PersistentVolumeClaimCondition": (
        "1:type:s 2:status:s 3:lastProbeTime:Time:e 4:lastTransitionTime:Time:e 5:reason:s:e "
        "6:message:s:e"
    ),
    "core/v1.PersistentVolumeClaimSpec": (
        "1:accessModes:[]s:e 4:selector:meta/v1.LabelSelector:*e "
        "2:resources:VolumeResourceRequirements:e 3:volumeName:s:e 5:storageClassName:s:*e "
        "6:volumeMode:s:*e 7:dataSource:TypedLocalObjectReference:*e "
        "8:dataSourceRef:TypedObjectReference:*e 9:volumeAttributesClassName:s:*e"
    ),
    "core/v1.PersistentVolumeClaimStatus": (
        "1:phase:s:e 2:accessModes:[]s:e 3:capacity:{Quantity}:e "
        "4:conditions:[]PersistentVolumeClaimCondition:e 5:allocatedResources:{Quantity}:e "
        "7:allocatedResourceStatuses:{s}:e 8:currentVolumeAttributesClassName:s:*e "
        "9:modifyVolumeStatus:ModifyVolumeStatus:*e 10:healthStatus:VolumeHealthStatus:*e"
    ),
    "core/v1.PersistentVolumeClaimTemplate": (
        "1:metadata:meta/v1.ObjectMeta:e 2:spec:PersistentVolumeClaimSpec"
    ),
    "core/v1.PersistentVolumeClaimVolumeSource": "1:claimName:s 2:readOnly:b:e",
    "core/v1.PersistentVolumeSource": (
        "1:gcePersistentDisk:GCEPersistentDiskVolumeSource:*e "
        "2:awsElasticBlockStore:AWSElasticBlockStoreVolumeSource:*e "
        "3:hostPath:HostPathVolumeSource:*e 4:glusterfs:GlusterfsPersistentVolumeSource:*e "
        "5:nfs:NFSVolumeSource:*e 6:rbd:RBDPersistentVolumeSource:*e "
        "7:iscsi:ISCSIPersistentVolumeSource:*e 8:cinder:CinderPersistentVolumeSource:*e "
        "9:cephfs:CephFSPersistentVolumeSource:*e 10:fc:FCVolumeSource:*e "
        "11:flocker:FlockerVolumeSource:*e 12:flexVolume:FlexPersistentVolumeSource:*e "
        "13:azureFile:AzureFilePersistentVolumeSource:*e "
        "14:vsphereVolume:VsphereVirtualDiskVolumeSource:*e 15:quobyte:QuobyteVolumeSource:*e "
        "16:azureDisk:AzureDiskVolumeSource:*e "
        "17:photonPersistentDisk:PhotonPersistentDiskVolumeSource:*e "
        "18:portworxVolume:PortworxVolumeSource:*e 19:scaleIO:ScaleIOPersistentVolumeSource:*e "
        "20:local:LocalVolumeSource:*e 21:storageos:StorageOSPersistentVolumeSource:*e "
        "22:csi:CSIPersistentVolumeSource:*e"
    ),
    "core/v1.PersistentVolumeSpec": (
        "1:capacity:{Quantity}:e 2::PersistentVolumeSource:- 3:accessModes:[]s:e "
        "4:claimRef:ObjectReference:*e 5:persistentVolumeReclaimPolicy:s:e 6:storageClassName:s:e "
        "7:mountOptions:[]s:e 8:volumeMode:s:*e 9:nodeAffinity:VolumeNodeAffinity:*e "
        "10:volumeAttributesClassName:s:*e"
    ),
    "core/v1.PersistentVolumeStatus": (
        "1:phase:s:e 2:message:s:e 3:reason:s:e 4:lastPhaseTransitionTime:Time:*e"
    ),
    "core/v1.PhotonPersistentDiskVolumeSource": "1:pdID:s 2:fsType:s:e",
    "core/v1.Pod": "1:metadata:meta/v1.ObjectMeta:e 2:spec:PodSpec:e 3:status:PodStatus:e",
    "core/v1.PodAffinity": (
        "1:requiredDuringSchedulingIgnoredDuringExecution:[]PodAffinityTerm:e "
        "2:preferredDuringSchedulingIgnoredDuringExecution:[]WeightedPodAffinityTerm:e"
    ),
    "core/v1.PodAffinityTerm": (
        "1:labelSelector:meta/v1.LabelSelector:*e 2:namespaces:[]s:e 3:topologyKey:s "
        "4:namespaceSelector:meta/v1.LabelSelector:*e 5:matchLabelKeys:[]s:e "
        "6:mismatchLabelKeys:[]s:e"
    ),
    "core/v1.PodAntiAffinity": (
        "1:requiredDuringSchedulingIgnoredDuringExecution:[]PodAffinityTerm:e "
        "2:preferredDuringSchedulingIgnoredDuringExecution:[]WeightedPodAffinityTerm:e"
    ),
    "core/v1.PodCertificateProjection": (
        "1:signerName:s:e 2:keyType:s:e 3:maxExpirationSeconds:i:*e 4:credentialBundlePath:s:e "
        "5:keyPath:s:e 6:certificateChainPath:s:e 7:userAnnotations:{s}:e 8:user:i:*e"
    ),
    "core/v1.PodCondition": (
        "1:type:s 7:observedGeneration:i:e 2:status:s 3:lastProbeTime:Time:e "
        "4:lastTransitionTime:Time:e 5:reason:s:e 6:message:s:e"
    ),
    "core/v1.PodDNSConfig": "1:nameservers:[]s:e 2:searches:[]s:e 3:options:[]PodDNSConfigOption:e",
    "core/v1.PodDNSConfigOption": "1:name:s:e 2:value:s:*e",
    "core/v1.PodExtendedResourceClaimStatus": (
        "1:requestMappings:[]ContainerExtendedResourceRequest 2:resourceClaimName:s"
    ),
    "core/v1.PodIP": "1:ip:s",
    "core/v1.PodOS": "1:name:s",
    "core/v1.PodReadinessGate": "1:conditionType:s",
    "core/v1.PodResourceClaim": "1:name:s 3:resourceClaimName:s:*e 4:resourceClaimTemplateName:s:*e",
    "core/v1.PodResourceClaimStatus": "1:name:s 2:resourceClaimName:s:*e",
    "core/v1.PodSchedulingGate": "1:name:s",
    "core/v1.PodSchedulingGroup": "1:podGroupName:s:*e",
    "core/v1.PodSecurityContext": (
        "1:seLinuxOptions:SELinuxOptions:*e 8:windowsOptions:WindowsSecurityContextOptions:*e "
        "2:runAsUser:i:*e 6:runAsGroup:i:*e 3:runAsNonRoot:b:*e 4:supplementalGroups:[]i:e "
        "12:supplementalGroupsPolicy:s:*e 5:fsGroup:i:*e 7:sysctls:[]Sysctl:e "
        "9:fsGroupChangePolicy:s:*e 10:seccompProfile:SeccompProfile:*e "
        "11:appArmorProfile:AppArmorProfile:*e 13:seLinuxChangePolicy:s:*e"
    ),
    "core/v1.PodSpec": (
        "1:volumes:[]Volume:e 20:initContainers:[]Container:e 2:containers:[]Container "
        "34:ephemeralContainers:[]EphemeralContainer:e 3:restartPolicy:s:e "
        "4:terminationGracePeriodSeconds:i:*e 5:activeDeadlineSeconds:i:*e 6:dnsPolicy:s:e "
        "7:nodeSelector:{s}:e 8:serviceAccountName:s:e 9:serviceAccount:s:e "
        "21:automountServiceAccountToken:b:*e 10:nodeName:s:e 11:hostNetwork:b:e 12:hostPID:b:e "
        "13:hostIPC:b:e 27:shareProcessNamespace:b:*e 14:securityContext:PodSecurityContext:*e "
        "15:imagePullSecrets:[]LocalObjectReference:e 16:hostname:s:e 17:subdomain:s:e "
        "18:affinity:Affinity:*e 19:schedulerName:s:e 22:tolerations:[]Toleration:e "
        "23:hostAliases:[]HostAlias:e 24:priorityClassName:s:e 25:priority:i:*e "
        "26:dnsConfig:PodDNSConfig:*e 28:readinessGates:[]PodReadinessGate:e "
        "29:runtimeClassName:s:*e 30:enableServiceLinks:b:*e 31:preemptionPolicy:s:*e "
        "32:overhead:{Quantity}:e 33:topologySpreadConstraints:[]TopologySpreadConstraint:e "
        "35:setHostnameAsFQDN:b:*e 36:os:PodOS:*e 37:hostUsers:b:*e "
        "38:schedulingGates:[]PodSchedulingGate:e 39:resourceClaims:[]PodResourceClaim:e "
        "40:resources:ResourceRequirements:*e 41:hostnameOverride:s:*e "
        "43:schedulingGroup:PodSchedulingGroup:*e 44:evictionResponders:[]EvictionResponder:e"
    ),
    "core/v1.PodStatus": (
        "17:observedGeneration:i:e 1:phase:s:e 2:conditions:[]PodCondition:e 3:message:s:e "
        "4:reason:s:e 11:nominatedNodeName:s:e 5:hostIP:s:e 16:hostIPs:[]HostIP:e 6:podIP:s:e "
        "12:podIPs:[]PodIP:e 7:startTime:Time:*e 10:initContainerStatuses:[]ContainerStatus:e "
        "8:containerStatuses:[]ContainerStatus:e 9:qosClass:s:e "
        "13:ephemeralContainerStatuses:[]ContainerStatus:e 14:resize:s:e "
        "15:resourceClaimStatuses:[]PodResourceClaimStatus:e "
        "18:extendedResourceClaimStatus:PodExtendedResourceClaimStatus:*e "
        "19:allocatedResources:{Quantity}:e 20:resources:ResourceRequirements:*e "
        "21:nodeAllocatableResourceClaimStatuses:[]NodeAllocatableResourceClaimStatus:e "
        "22:volumeHealth:[]PodVolumeHealth:e"
    ),
    "core/v1.PodTemplate": "1:metadata:meta/v1.ObjectMeta:e 2:template:PodTemplateSpec:e",
    "core/v1.PodTemplateSpec": "1:metadata:meta/v1.ObjectMeta:e 2:spec:PodSpec:e",
    "core/v1.PodVolumeHealth": (
        "1:name:s 2:healthConditions:[]VolumeHealthCondition:e 3:lastTransitionTime:Time:e"
    ),
    "core/v1.PortStatus": "1:port:i 2:protocol:s 3:error:s:*e",
    "core/v1.PortworxVolumeSource": "1:volumeID:s 2:fsType:s:e 3:readOnly:b:e",
    "core/v1.PreferredSchedulingTerm": "1:weight:i 2:preference:NodeSelectorTerm",
    "core/v1.Probe": (
        "1::ProbeHandler:- 2:initialDelaySeconds:i:e 3:timeoutSeconds:i:e 4:periodSeconds:i:e "
        "5:successThreshold:i:e 6:failureThreshold:i:e 7:terminationGracePeriodSeconds:i:*e"
    ),
    "core/v1.ProbeHandler": (
        "1:exec:ExecAction:*e 2:httpGet:HTTPGetAction:*e 3:tcpSocket:TCPSocketAction:*e "
        "4:grpc:GRPCAction:*e"
    ),
    "core/v1.ProjectedVolumeSource": "1:sources:[]VolumeProjection 2:defaultMode:i:*e 3:defaultUser:i:*e",
    "core/v1.QuobyteVolumeSource": (
        "1:registry:s 2:volume:s 3:readOnly:b:e 4:user:s:e 5:group:s:e 6:tenant:s:e"
    ),
    "core/v1.RBDPersistentVolumeSource": (
        "1:monitors:[]s 2:image:s 3:fsType:s:e 4:pool:s:e 5:user:s:e 6:keyring:s:e "
        "7:secretRef:SecretReference:*e 8:readOnly:b:e"
    ),
    "core/v1.RBDVolumeSource": (
        "1:monitors:[]s 2:image:s 3:fsType:s:e 4:pool:s:e 5:user:s:e 6:keyring:s:e "
        "7:secretRef:LocalObjectReference:*e 8:readOnly:b:e"
    ),
    "core/v1.ReplicationController": (
        "1:metadata:meta/v1.ObjectMeta:e 2:spec:ReplicationControllerSpec:e "
        "3:status:ReplicationControllerStatus:e"
    ),
    "core/v1.ReplicationControllerCondition": (
        "1:type:s 2:status:s 3:lastTransitionTime:Time:e 4:reason:s:e 5:message:s:e"
    ),
    "core/v1.ReplicationControllerSpec": (
        "1:replicas:i:*e 4:minReadySeconds:i:e 2:selector:{s}:e 3:template:PodTemplateSpec:*e"
    ),
    "core/v1.ReplicationControllerStatus": (
        "1:replicas:i 2:fullyLabeledReplicas:i:e 4:readyReplicas:i:e 5:availableReplicas:i:e "
        "3:observedGeneration:i:e 6:conditions:[]ReplicationControllerCondition:e"
    ),
    "core/v1.ResourceClaim": "1:name:s 2:request:s:e",
    "core/v1.ResourceFieldSelector": "1:containerName:s:e 2:resource:s 3:divisor:Quantity:e",
    "core/v1.ResourceHealth": "1:resourceID:s 2:health:s:e 6:message:s:*e",
    "core/v1.ResourceQuota": (
        "1:metadata:meta/v1.ObjectMeta:e 2:spec:ResourceQuotaSpec:e 3:status:ResourceQuotaStatus:e"
    ),
    "core/v1.ResourceQuotaSpec": "1:hard:{Quantity}:e 2:scopes:[]s:e 3:scopeSelector:ScopeSelector:*e",
    "core/v1.ResourceQuotaStatus": "1:hard:{Quantity}:e 2:used:{Quantity}:e",
    "core/v1.ResourceRequirements": (
        "1:limits:{Quantity}:e 2:requests:{Quantity}:e 3:claims:[]ResourceClaim:e"
    ),
    "core/v1.ResourceStatus": "1:name:s 2:resources:[]ResourceHealth:e",
    "core/v1.SELinuxOptions": "1:user:s:e 2:role:s:e 3:type:s:e 4:level:s:e",
    "core/v1.ScaleIOPersistentVolumeSource": (
        "1:gateway:s 2:system:s 3:secretRef:SecretReference:* 4:sslEnabled:b:e "
        "5:protectionDomain:s:e 6:storagePool:s:e 7:storageMode:s:e 8:volumeName:s:e 9:fsType:s:e "
        "10:readOnly:b:e"
    ),
    "core/v1.ScaleIOVolumeSource": (
        "1:gateway:s 2:system:s 3:secretRef:LocalObjectReference:* 4:sslEnabled:b:e "
        "5:protectionDomain:s:e 6:storagePool:s:e 7:storageMode:s:e 8:volumeName:s:e 9:fsType:s:e "
        "10:readOnly:b:e"
    ),
    "core/v1.ScopeSelector": "1:matchExpressions:[]ScopedResourceSelectorRequirement:e",
    "core/v1.ScopedResourceSelectorRequirement": "1:scopeName:s 2:operator:s 3:values:[]s:e",
    "core/v1.SeccompProfile": "1:type:s 2:localhostProfile:s:*e",
    "core/v1.Secret": (
        "1:metadata:meta/v1.ObjectMeta:e 5:immutable:b:*e 2:data:{y}:e 4:stringData:{s}:e "
        "3:type:s:e"
    ),
    "core/v1.SecretEnvSource": "1::LocalObjectReference:- 2:optional:b:*e",
    "core/v1.SecretKeySelector": "1::LocalObjectReference:- 2:key:s 3:optional:b:*e",
    "core/v1.SecretProjection": "1::LocalObjectReference:- 2:items:[]KeyToPath:e 4:optional:b:*e",
    "core/v1.SecretReference": "1:name:s:e 2:namespace:s:e",
    "core/v1.SecretVolumeSource": (
        "1:secretName:s:e 2:items:[]KeyToPath:e 3:defaultMode:i:*e 4:optional:b:*e "
        "5:defaultUser:i:*e"
    ),
    "core/v1.SecurityContext": (
        "1:capabilities:Capabilities:*e 2:privileged:b:*e 3:seLinuxOptions:SELinuxOptions:*e "
        "10:windowsOptions:WindowsSecurityContextOptions:*e 4:runAsUser:i:*e 8:runAsGroup:i:*e "
        "5:runAsNonRoot:b:*e 6:readOnlyRootFilesystem:b:*e 7:allowPrivilegeEscalation:b:*e "
        "9:procMount:s:*e 11:seccompProfile:SeccompProfile:*e 12:appArmorProfile:AppArmorProfile:*e"
    ),
    "core/v1.Service": "1:metadata:meta/v1.ObjectMeta:e 2:spec:ServiceSpec:e 3:status:ServiceStatus:e",
    "core/v1.ServiceAccount": (
        "1:metadata:meta/v1.ObjectMeta:e 2:secrets:[]ObjectReference:e "
        "3:imagePullSecrets:[]LocalObjectReference:e 4:automountServiceAccountToken:b:*e"
    ),
    "core/v1.ServiceAccountTokenProjection": "1:audience:s:e 2:expirationSeconds:i:*e 3:path:s 4:user:i:*e",
    "core/v1.ServicePort": (
        "1:name:s:e 2:protocol:s:e 6:appProtocol:s:*e 3:port:i 4:targetPort:IntOrString:e "
        "5:nodePort:i:e"
    ),
    "core/v1.ServiceSpec": (
        "1:ports:[]ServicePort:e 2:selector:{s}:e 3:clusterIP:s:e 18:clusterIPs:[]s:e 4:type:s:e "
        "5:externalIPs:[]s:e 7:sessionAffinity:s:e 8:loadBalancerIP:s:e "
        "9:loadBalancerSourceRanges:[]s:e 10:externalName:s:e 11:externalTrafficPolicy:s:e "
        "12:healthCheckNodePort:i:e 13:publishNotReadyAddresses:b:e "
        "14:sessionAffinityConfig:SessionAffinityConfig:*e 19:ipFamilies:[]s:e "
        "17:ipFamilyPolicy:s:*e 20:allocateLoadBalancerNodePorts:b:*e 21:loadBalancerClass:s:*e "
        "22:internalTrafficPolicy:s:*e 23:trafficDistribution:s:*e"
    ),
    "core/v1.ServiceStatus": "1:loadBalancer:LoadBalancerStatus:e 2:conditions:[]meta/v1.Condition:e",
    "core/v1.SessionAffinityConfig": "1:clientIP:ClientIPConfig:*e",
    "core/v1.SleepAction": "1:seconds:i",
    "core/v1.StorageOSPersistentVolumeSource": (
        "1:volumeName:s:e 2:volumeNamespace:s:e 3:fsType:s:e 4:readOnly:b:e "
        "5:secretRef:ObjectReference:*e"
    ),
    "core/v1.StorageOSVolumeSource": (
        "1:volumeName:s:e 2:volumeNamespace:s:e 3:fsType:s:e 4:readOnly:b:e "
        "5:secretRef:LocalObjectReference:*e"
    ),
    "core/v1.Sysctl": "1:name:s 2:value:s",
    "core/v1.TCPSocketAction": "1:port:IntOrString 2:host:s:e",
    "core/v1.Taint": "1:key:s 2:value:s:e 3:effect:s 4:timeAdded:Time:*e",
    "core/v1.Toleration": "1:key:s:e 2:operator:s:e 3:value:s:e 4:effect:s:e 5:tolerationSeconds:i:*e",
    "core/v1.TopologySelectorLabelRequirement": "1:key:s 2:values:[]s",
    "core/v1.TopologySelectorTerm": "1:matchLabelExpressions:[]TopologySelectorLabelRequirement:e",
    "core/v1.TopologySpreadConstraint": (
        "1:maxSkew:i 2:topologyKey:s 3:whenUnsatisfiable:s 4:labelSelector:meta/v1.LabelSelector:*e "
        "5:minDomains:i:*e 6:nodeAffinityPolicy:s:*e 7:nodeTaintsPolicy:s:*e 8:matchLabelKeys:[]s:e"
    ),
    "core/v1.TypedLocalObjectReference": "1:apiGroup:s:* 2:kind:s 3:name:s",
    "core/v1.TypedObjectReference": "1:apiGroup:s:* 2:kind:s 3:name:s 4:namespace:s:*e",
    "core/v1.Volume": "1:name:s 2::VolumeSource:-",
    "core/v1.VolumeDevice": "1:name:s 2:devicePath:s",
    "core/v1.VolumeHealthCondition": "1:status:s 2:reason:s 3:message:s:e",
    "core/v1.VolumeHealthStatus": "1:healthConditions:[]VolumeHealthCondition:e 2:lastTransitionTime:Time:e",
    "core/v1.VolumeMount": (
        "1:name:s 2:readOnly:b:e 7:recursiveReadOnly:s:*e 3:mountPath:s 4:subPath:s:e "
        "5:mountPropagation:s:*e 6:subPathExpr:s:e 8:bindMountOptions:[]s:e"
    ),
    "core/v1.VolumeMountStatus": (
        "1:name:s 2:mountPath:s 3:readOnly:b:e 4:recursiveReadOnly:s:*e "
        "5:volumeStatus:VolumeStatus:*e"
    ),
    "core/v1.VolumeNodeAffinity": "1:required:NodeSelector:*e",
    "core/v1.VolumeProjection": (
        "1:secret:SecretProjection:*e 2:downwardAPI:DownwardAPIProjection:*e "
        "3:configMap:ConfigMapProjection:*e 4:serviceAccountToken:ServiceAccountTokenProjection:*e "
        "5:clusterTrustBundle:ClusterTrustBundleProjection:*e "
        "6:podCertificate:PodCertificateProjection:*e"
    ),
    "core/v1.VolumeResourceRequirements": "1:limits:{Quantity}:e 2:requests:{Quantity}:e",
    "core/v1.VolumeSource": (
        "1:hostPath:HostPathVolumeSource:*e 2:emptyDir:EmptyDirVolumeSource:*e "
        "3:gcePersistentDisk:GCEPersistentDiskVolumeSource:*e "
        "4:awsElasticBlockStore:AWSElasticBlockStoreVolumeSource:*e "
        "5:gitRepo:GitRepoVolumeSource:*e 6:secret:SecretVolumeSource:*e 7:nfs:NFSVolumeSource:*e "
        "8:iscsi:ISCSIVolumeSource:*e 9:glusterfs:GlusterfsVolumeSource:*e "
        "10:persistentVolumeClaim:PersistentVolumeClaimVolumeSource:*e 11:rbd:RBDVolumeSource:*e "
        "12:flexVolume:FlexVolumeSource:*e 13:cinder:CinderVolumeSource:*e "
        "14:cephfs:CephFSVolumeSource:*e 15:flocker:FlockerVolumeSource:*e "
        "16:downwardAPI:DownwardAPIVolumeSource:*e 17:fc:FCVolumeSource:*e "
        "18:azureFile:AzureFileVolumeSource:*e 19:configMap:ConfigMapVolumeSource:*e "
        "20:vsphereVolume:VsphereVirtualDiskVolumeSource:*e 21:quobyte:QuobyteVolumeSource:*e "
        "22:azureDisk:AzureDiskVolumeSource:*e "
        "23:photonPersistentDisk:PhotonPersistentDiskVolumeSource:*e "
        "26:projected:ProjectedVolumeSource:*e 24:portworxVolume:PortworxVolumeSource:*e "
        "25:scaleIO:ScaleIOVolumeSource:*e 27:storageos:StorageOSVolumeSource:*e "
        "28:csi:CSIVolumeSource:*e 29:ephemeral:EphemeralVolumeSource:*e "
        "30:image:ImageVolumeSource:*e"
    ),
    "core/v1.VolumeStatus": "1:image:ImageVolumeStatus:*e",
    "core/v1.VsphereVirtualDiskVolumeSource": (
        "1:volumePath:s 2:fsType:s:e 3:storagePolicyName:s:e 4:storagePolicyID:s:e"
    ),
    "core/v1.WeightedPodAffinityTerm": "1:weight:i 2:podAffinityTerm:PodAffinityTerm",
    "core/v1.WindowsSecurityContextOptions": (
        "1:gmsaCredentialSpecName:s:*e 2:gmsaCredentialSpec:s:*e 3:runAsUserName:s:*e "
        "4:hostProcess:b:*e"
    ),
    "discovery/v1.Endpoint": (
        "1:addresses:[]s 2:conditions:EndpointConditions:e 3:hostname:s:*e "
        "4:targetRef:core/v1.ObjectReference:*e 5:deprecatedTopology:{s}:e 6:nodeName:s:*e "
        "7:zone:s:*e 8:hints:EndpointHints:*e"
    ),
    "discovery/v1.EndpointConditions": "1:ready:b:*e 2:serving:b:*e 3:terminating:b:*e",
    "discovery/v1.EndpointHints": "1:forZones:[]ForZone:e 2:forNodes:[]ForNode:e",
    "discovery/v1.EndpointPort": "1:name:s:*e 2:protocol:s:*e 3:port:i:*e 4:appProtocol:s:*e",
    "discovery/v1.EndpointSlice": (
        "1:metadata:meta/v1.ObjectMeta:e 4:addressType:s 2:endpoints:[]Endpoint "
        "3:ports:[]EndpointPort"
    ),
    "discovery/v1.ForNode": "1:name:s",
    "discovery/v1.ForZone": "1:name:s",
    "events/v1.Event": (
        "1:metadata:meta/v1.ObjectMeta 2:eventTime:MicroTime 3:series:EventSeries:*e "
        "4:reportingController:s:e 5:reportingInstance:s:e 6:action:s:e 7:reason:s:e "
        "8:regarding:core/v1.ObjectReference:e 9:related:core/v1.ObjectReference:*e 10:note:s:e "
        "11:type:s:e 12:deprecatedSource:core/v1.EventSource:e 13:deprecatedFirstTimestamp:Time:e "
        "14:deprecatedLastTimestamp:Time:e 15:deprecatedCount:i:e"
    ),
    "events/v1.EventSeries": "1:count:i 2:lastObservedTime:MicroTime",
    "meta/v1.Condition": (
        "1:type:s 2:status:s 3:observedGeneration:i:e 4:lastTransitionTime:Time 5:reason:s "
        "6:message:s"
    ),
    "meta/v1.DeleteOptions": (
        "1:gracePeriodSeconds:i:*e 2:preconditions:Preconditions:*e 3:orphanDependents:b:*e "
        "4:propagationPolicy:s:*e 5:dryRun:[]s:e "
        "6:ignoreStoreReadErrorWithClusterBreakingPotential:b:*e"
    ),
    "meta/v1.FieldSelectorRequirement": "1:key:s 2:operator:s 3:values:[]s:e",
    "meta/v1.LabelSelector": "1:matchLabels:{s}:e 2:matchExpressions:[]LabelSelectorRequirement:e",
    "meta/v1.LabelSelectorRequirement": "1:key:s 2:operator:s 3:values:[]s:e",
    "meta/v1.ManagedFieldsEntry": (
        "1:manager:s:e 2:operation:s:e 3:apiVersion:s:e 4:time:Time:*e 6:fieldsType:s:e "
        "7:fieldsV1:FieldsV1:*e 8:subresource:s:e"
    ),
    "meta/v1.ObjectMeta": (
        "1:name:s:e 2:generateName:s:e 3:namespace:s:e 4:selfLink:s:e 5:uid:s:e "
        "6:resourceVersion:s:e 7:generation:i:e 8:creationTimestamp:Time:ez "
        "9:deletionTimestamp:Time:*e 10:deletionGracePeriodSeconds:i:*e 11:labels:{s}:e "
        "12:annotations:{s}:e 13:ownerReferences:[]OwnerReference:e 14:finalizers:[]s:e "
        "17:managedFields:[]ManagedFieldsEntry:e"
    ),
    "meta/v1.OwnerReference": (
        "5:apiVersion:s 1:kind:s 3:name:s 4:uid:s 6:controller:b:*e 7:blockOwnerDeletion:b:*e"
    ),
    "meta/v1.Preconditions": "1:uid:s:*e 2:resourceVersion:s:*e",
    "networking/v1.HTTPIngressPath": "1:path:s:e 3:pathType:s:* 2:backend:IngressBackend",
    "networking/v1.HTTPIngressRuleValue": "1:paths:[]HTTPIngressPath",
    "networking/v1.IPBlock": "1:cidr:s 2:except:[]s:e",
    "networking/v1.Ingress": "1:metadata:meta/v1.ObjectMeta:e 2:spec:IngressSpec:e 3:status:IngressStatus:e",
    "networking/v1.IngressBackend": (
        "4:service:IngressServiceBackend:*e 3:resource:core/v1.TypedLocalObjectReference:*e"
    ),
    "networking/v1.IngressClass": "1:metadata:meta/v1.ObjectMeta:e 2:spec:IngressClassSpec:e",
    "networking/v1.IngressClassParametersReference": (
        "1:apiGroup:s:*e 2:kind:s 3:name:s 4:scope:s:* 5:namespace:s:*e"
    ),
    "networking/v1.IngressClassSpec": "1:controller:s:e 2:parameters:IngressClassParametersReference:*e",
    "networking/v1.IngressLoadBalancerIngress": "1:ip:s:e 2:hostname:s:e 4:ports:[]IngressPortStatus:e",
    "networking/v1.IngressLoadBalancerStatus": "1:ingress:[]IngressLoadBalancerIngress:e",
    "networking/v1.IngressPortStatus": "1:port:i 2:protocol:s 3:error:s:*e",
    "networking/v1.IngressRule": "1:host:s:e 2::IngressRuleValue:-",
    "networking/v1.IngressRuleValue": "1:http:HTTPIngressRuleValue:*e",
    "networking/v1.IngressServiceBackend": "1:name:s 2:port:ServiceBackendPort:e",
    "networking/v1.IngressSpec": (
        "4:ingressClassName:s:*e 1:defaultBackend:IngressBackend:*e 2:tls:[]IngressTLS:e "
        "3:rules:[]IngressRule:e"
    ),
    "networking/v1.IngressStatus": "1:loadBalancer:IngressLoadBalancerStatus:e",
    "networking/v1.IngressTLS": "1:hosts:[]s:e 2:secretName:s:e",
    "networking/v1.NetworkPolicy": "1:metadata:meta/v1.ObjectMeta:e 2:spec:NetworkPolicySpec:e",
    "networking/v1.NetworkPolicyEgressRule": "1:ports:[]NetworkPolicyPort:e 2:to:[]NetworkPolicyPeer:e",
    "networking/v1.NetworkPolicyIngressRule": "1:ports:[]NetworkPolicyPort:e 2:from:[]NetworkPolicyPeer:e",
    "networking/v1.NetworkPolicyPeer": (
        "1:podSelector:meta/v1.LabelSelector:*e 2:namespaceSelector:meta/v1.LabelSelector:*e "
        "3:ipBlock:IPBlock:*e"
    ),
    "networking/v1.NetworkPolicyPort": "1:protocol:s:*e 2:port:IntOrString:*e 3:endPort:i:*e",
    "networking/v1.NetworkPolicySpec": (
        "1:podSelector:meta/v1.LabelSelector 2:ingress:[]NetworkPolicyIngressRule:e "
        "3:egress:[]NetworkPolicyEgressRule:e 4:policyTypes:[]s:e"
    ),
    "networking/v1.ServiceBackendPort": "1:name:s:e 2:number:i:e",
    "policy/v1.Eviction": "1:metadata:meta/v1.ObjectMeta:e 2:deleteOptions:meta/v1.DeleteOptions:*e",
    "policy/v1.PodDisruptionBudget": (
        "1:metadata:meta/v1.ObjectMeta:e 2:spec:PodDisruptionBudgetSpec:e "
        "3:status:PodDisruptionBudgetStatus:e"
    ),
    "policy/v1.PodDisruptionBudgetSpec": (
        "1:minAvailable:IntOrString:*e 2:selector:meta/v1.LabelSelector:*e "
        "3:maxUnavailable:IntOrString:*e 4:unhealthyPodEvictionPolicy:s:*e"
    ),
    "policy/v1.PodDisruptionBudgetStatus": (
        "1:observedGeneration:i:e 2:disruptedPods:{Time}:e 3:disruptionsAllowed:i "
        "4:currentHealthy:i 5:desiredHealthy:i 6:expectedPods:i 7:conditions:[]meta/v1.Condition:e"
    ),
    "rbac/v1.AggregationRule": "1:clusterRoleSelectors:[]meta/v1.LabelSelector:e",
    "rbac/v1.ClusterRole": (
        "1:metadata:meta/v1.ObjectMeta:e 2:rules:[]PolicyRule 3:aggregationRule:AggregationRule:*e"
    ),
    "rbac/v1.ClusterRoleBinding": "1:metadata:meta/v1.ObjectMeta:e 2:subjects:[]Subject:e 3:roleRef:RoleRef",
    "rbac/v1.PolicyRule": (
        "1:verbs:[]s 2:apiGroups:[]s:e 3:resources:[]s:e 4:resourceNames:[]s:e "
        "5:nonResourceURLs:[]s:e"
    ),
    "rbac/v1.Role": "1:metadata:meta/v1.ObjectMeta:e 2:rules:[]PolicyRule",
    "rbac/v1.RoleBinding": "1:metadata:meta/v1.ObjectMeta:e 2:subjects:[]Subject:e 3:roleRef:RoleRef",
    "rbac/v1.RoleRef": "1:apiGroup:s 2:kind:s 3:name:s",
    "rbac/v1.Subject": "1:kind:s 2:apiGroup:s:e 3:name:s 4:namespace:s:e",
    "scheduling/v1.PriorityClass": (
        "1:metadata:meta/v1.ObjectMeta:e 2:value:i 3:globalDefault:b:e 4:description:s:e "
        "5:preemptionPolicy:s:*e"
    ),
    "scheduling/v1alpha3.TopologyConstraint": "1:key:s",
    "scheduling/v1alpha3.WorkloadPodGroupAllDisruptionMode": "",
    "scheduling/v1alpha3.WorkloadPodGroupBasicSchedulingPolicy": "",
    "scheduling/v1alpha3.WorkloadPodGroupDisruptionMode": (
        "1:single:WorkloadPodGroupSingleDisruptionMode:*e "
        "2:all:WorkloadPodGroupAllDisruptionMode:*e"
    ),
    "scheduling/v1alpha3.WorkloadPodGroupGangSchedulingPolicy": "1:minCount:i:*e",
    "scheduling/v1alpha3.WorkloadPodGroupResourceClaim": (
        "1:name:s 2:resourceClaimName:s:*e 3:resourceClaimTemplateName:s:*e"
    ),
    "scheduling/v1alpha3.WorkloadPodGroupSchedulingConstraints": "1:topology:[]TopologyConstraint:e",
    "scheduling/v1alpha3.WorkloadPodGroupSchedulingPolicy": (
        "1:basic:WorkloadPodGroupBasicSchedulingPolicy:*e "
        "2:gang:WorkloadPodGroupGangSchedulingPolicy:*e"
    ),
    "scheduling/v1alpha3.WorkloadPodGroupSingleDisruptionMode": "",
    "storage/v1.StorageClass": (
        "1:metadata:meta/v1.ObjectMeta:e 2:provisioner:s 3:parameters:{s}:e 4:reclaimPolicy:s:*e "
        "5:mountOptions:[]s:e 6:allowVolumeExpansion:b:*e 7:volumeBindingMode:s:*e "
        "8:allowedTopologies:[]core/v1.TopologySelectorTerm:e"
    ),
}
