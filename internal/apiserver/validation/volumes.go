package validation

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateVolumes checks the pod's volumes and returns their sources by name,
// for the volume mounts.
func validateVolumes(vols []corev1.Volume, p *field.Path) (map[string]*corev1.VolumeSource, field.ErrorList) {
	var errs field.ErrorList
	byName := map[string]*corev1.VolumeSource{}
	for i := range vols {
		v := &vols[i]
		vp := p.Index(i)
		errs = append(errs, validateVolumeSource(&v.VolumeSource, vp)...)
		switch {
		case v.Name == "":
			errs = append(errs, field.Required(vp.Child("name"), ""))
		default:
			errs = append(errs, dnsLabel(v.Name, vp.Child("name"))...)
		}
		if _, dup := byName[v.Name]; dup {
			errs = append(errs, field.Duplicate(vp.Child("name"), v.Name))
		} else {
			byName[v.Name] = &v.VolumeSource
		}
	}
	return byName, errs
}

const fileModeMsg = "must be a number between 0 and 0777 (octal), both inclusive"

func fileMode(mode *int32, p *field.Path) field.ErrorList {
	if mode != nil && (*mode < 0 || *mode > 0777) {
		return field.ErrorList{field.Invalid(p, *mode, fileModeMsg)}
	}
	return nil
}

// validateVolumeSource checks that exactly one source is set and the
// commonly used ones are complete.
func validateVolumeSource(vs *corev1.VolumeSource, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	set := setFields(vs)
	if len(set) == 0 {
		return field.ErrorList{field.Required(p, "must specify a volume type")}
	}
	for _, extra := range set[1:] {
		errs = append(errs, field.Forbidden(p.Child(extra), "may not specify more than 1 volume type"))
	}
	if s := vs.HostPath; s != nil {
		hp := p.Child("hostPath")
		if s.Path == "" {
			errs = append(errs, field.Required(hp.Child("path"), ""))
		}
		errs = append(errs, noBacksteps(s.Path, hp.Child("path"))...)
		if s.Type != nil {
			errs = append(errs, optionalEnum(*s.Type, hp.Child("type"), corev1.HostPathDirectoryOrCreate,
				corev1.HostPathDirectory, corev1.HostPathFileOrCreate, corev1.HostPathFile, corev1.HostPathSocket,
				corev1.HostPathCharDev, corev1.HostPathBlockDev)...)
		}
	}
	if s := vs.EmptyDir; s != nil && s.SizeLimit != nil && s.SizeLimit.Sign() < 0 {
		errs = append(errs, field.Forbidden(p.Child("emptyDir", "sizeLimit"), "SizeLimit field must be a valid resource quantity"))
	}
	if s := vs.Secret; s != nil {
		sp := p.Child("secret")
		if s.SecretName == "" {
			errs = append(errs, field.Required(sp.Child("secretName"), ""))
		} else {
			errs = append(errs, dnsSubdomain(s.SecretName, sp.Child("secretName"))...)
		}
		errs = append(errs, fileMode(s.DefaultMode, sp.Child("defaultMode"))...)
		errs = append(errs, validateKeyToPaths(s.Items, sp.Child("items"))...)
	}
	if s := vs.ConfigMap; s != nil {
		cp := p.Child("configMap")
		if s.Name == "" {
			errs = append(errs, field.Required(cp.Child("name"), ""))
		} else {
			errs = append(errs, dnsSubdomain(s.Name, cp.Child("name"))...)
		}
		errs = append(errs, fileMode(s.DefaultMode, cp.Child("defaultMode"))...)
		errs = append(errs, validateKeyToPaths(s.Items, cp.Child("items"))...)
	}
	if s := vs.PersistentVolumeClaim; s != nil && s.ClaimName == "" {
		errs = append(errs, field.Required(p.Child("persistentVolumeClaim", "claimName"), ""))
	}
	if s := vs.NFS; s != nil {
		np := p.Child("nfs")
		if s.Server == "" {
			errs = append(errs, field.Required(np.Child("server"), ""))
		}
		if s.Path == "" {
			errs = append(errs, field.Required(np.Child("path"), ""))
		} else if !strings.HasPrefix(s.Path, "/") {
			errs = append(errs, field.Invalid(np.Child("path"), s.Path, "must be an absolute path"))
		}
	}
	if s := vs.DownwardAPI; s != nil {
		dp := p.Child("downwardAPI")
		errs = append(errs, fileMode(s.DefaultMode, dp.Child("defaultMode"))...)
		errs = append(errs, validateDownwardAPIFiles(s.Items, dp.Child("items"))...)
	}
	if s := vs.Projected; s != nil {
		errs = append(errs, validateProjected(s, p.Child("projected"))...)
	}
	if s := vs.CSI; s != nil && s.Driver == "" {
		errs = append(errs, field.Required(p.Child("csi", "driver"), ""))
	}
	if s := vs.Ephemeral; s != nil {
		ep := p.Child("ephemeral", "volumeClaimTemplate")
		if s.VolumeClaimTemplate == nil {
			errs = append(errs, field.Required(ep, ""))
		} else {
			errs = append(errs, validatePVCSpec(&s.VolumeClaimTemplate.Spec, ep.Child("spec"))...)
		}
	}
	return errs
}

// noBacksteps rejects ".." path elements, which would escape the volume.
func noBacksteps(v string, p *field.Path) field.ErrorList {
	for _, part := range strings.Split(strings.ReplaceAll(v, `\`, "/"), "/") {
		if part == ".." {
			return field.ErrorList{field.Invalid(p, v, "must not contain '..'")}
		}
	}
	return nil
}

func validateKeyToPaths(items []corev1.KeyToPath, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, kp := range items {
		ip := p.Index(i)
		if kp.Key == "" {
			errs = append(errs, field.Required(ip.Child("key"), ""))
		}
		if kp.Path == "" {
			errs = append(errs, field.Required(ip.Child("path"), ""))
		}
		errs = append(errs, relativePath(kp.Path, ip.Child("path"))...)
		if strings.HasPrefix(kp.Path, "..") {
			errs = append(errs, field.Invalid(ip.Child("path"), kp.Path, "must not start with '..'"))
		}
		errs = append(errs, fileMode(kp.Mode, ip.Child("mode"))...)
	}
	return errs
}

func validateDownwardAPIFiles(items []corev1.DownwardAPIVolumeFile, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, f := range items {
		fp := p.Index(i)
		if f.Path == "" {
			errs = append(errs, field.Required(fp.Child("path"), ""))
		}
		errs = append(errs, relativePath(f.Path, fp.Child("path"))...)
		errs = append(errs, fileMode(f.Mode, fp.Child("mode"))...)
		switch {
		case f.FieldRef != nil && f.ResourceFieldRef != nil:
			errs = append(errs, field.Invalid(fp, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously"))
		case f.FieldRef != nil:
			errs = append(errs, validateFieldRef(f.FieldRef, volumeFieldPaths, fp.Child("fieldRef"))...)
		case f.ResourceFieldRef != nil:
			errs = append(errs, validateResourceFieldRef(f.ResourceFieldRef, true, fp.Child("resourceFieldRef"))...)
		default:
			errs = append(errs, field.Required(fp, "one of fieldRef and resourceFieldRef is required"))
		}
	}
	return errs
}

func validateProjected(s *corev1.ProjectedVolumeSource, p *field.Path) field.ErrorList {
	errs := fileMode(s.DefaultMode, p.Child("defaultMode"))
	paths := map[string]bool{}
	addPath := func(path string, pp *field.Path) {
		if paths[path] {
			errs = append(errs, field.Invalid(pp, path, "conflicting duplicate paths"))
		}
		paths[path] = true
	}
	for i := range s.Sources {
		src := &s.Sources[i]
		sp := p.Child("sources").Index(i)
		set := setFields(src)
		if len(set) == 0 {
			errs = append(errs, field.Required(sp, "must specify exactly 1 projection type"))
		}
		for _, extra := range set[min(1, len(set)):] {
			errs = append(errs, field.Forbidden(sp.Child(extra), "may not specify more than 1 volume type per source"))
		}
		if c := src.Secret; c != nil {
			errs = append(errs, validateKeyToPaths(c.Items, sp.Child("secret", "items"))...)
			for j, it := range c.Items {
				addPath(it.Path, sp.Child("secret", "items").Index(j).Child("path"))
			}
		}
		if c := src.ConfigMap; c != nil {
			errs = append(errs, validateKeyToPaths(c.Items, sp.Child("configMap", "items"))...)
			for j, it := range c.Items {
				addPath(it.Path, sp.Child("configMap", "items").Index(j).Child("path"))
			}
		}
		if c := src.DownwardAPI; c != nil {
			errs = append(errs, validateDownwardAPIFiles(c.Items, sp.Child("downwardAPI", "items"))...)
			for j, it := range c.Items {
				addPath(it.Path, sp.Child("downwardAPI", "items").Index(j).Child("path"))
			}
		}
		if t := src.ServiceAccountToken; t != nil {
			tp := sp.Child("serviceAccountToken")
			if t.Path == "" {
				errs = append(errs, field.Required(tp.Child("path"), ""))
			}
			errs = append(errs, relativePath(t.Path, tp.Child("path"))...)
			if e := t.ExpirationSeconds; e != nil {
				if *e < 600 {
					errs = append(errs, field.Invalid(tp.Child("expirationSeconds"), *e, "may not specify a duration less than 10 minutes"))
				} else if *e > 1<<32 {
					errs = append(errs, field.Invalid(tp.Child("expirationSeconds"), *e, "may not specify a duration larger than 2^32 seconds"))
				}
			}
			addPath(t.Path, tp.Child("path"))
		}
	}
	return errs
}
