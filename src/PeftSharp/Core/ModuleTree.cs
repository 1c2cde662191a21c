using System.Collections;
using System.Reflection;
using System.Runtime.CompilerServices;
using TorchSharp;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace PeftSharp.Core;

/// <summary>
/// Finds and swaps submodules of any TorchSharp module tree by qualified name (<c>model.layers.0.self_attn.q_proj</c>).
/// TorchSharp has no public "replace child" operation, so this is the one place that edits a parent's registration
/// (keeping the order) and every field or collection slot that held the old child.
/// </summary>
public static class ModuleTree
{
    private static readonly FieldInfo s_submodules =
        typeof(nn.Module).GetField("_internal_submodules", BindingFlags.Instance | BindingFlags.NonPublic)
        ?? throw new PeftException("TorchSharp changed: nn.Module._internal_submodules not found");

    /// <summary>The module at a qualified name, or throws naming the nearest existing names.</summary>
    public static nn.Module Get(nn.Module root, string qualifiedName)
    {
        if (qualifiedName.Length == 0)
        {
            return root;
        }
        var current = root;
        foreach (var part in qualifiedName.Split('.'))
        {
            var next = current.named_children().FirstOrDefault(c => c.name == part).module;
            current = next ?? throw new PeftException($"module '{qualifiedName}' not found (no child '{part}')");
        }
        return current;
    }

    /// <summary>Replaces the module at <paramref name="qualifiedName"/> by <paramref name="replacement"/> in its parent, in place.</summary>
    public static void Replace(nn.Module root, string qualifiedName, nn.Module replacement)
    {
        var dot = qualifiedName.LastIndexOf('.');
        var parentName = dot < 0 ? "" : qualifiedName[..dot];
        var childName = dot < 0 ? qualifiedName : qualifiedName[(dot + 1)..];
        var parent = Get(root, parentName);
        var old = Get(parent, childName);

        // Validate every slot before changing any, so a failure leaves the tree as it was.
        var edits = new List<Action>();
        for (var type = parent.GetType(); type != null && type != typeof(object); type = type.BaseType)
        {
            foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            {
                if (field.FieldType.IsValueType || field.Name == "_internal_submodules")
                {
                    continue;
                }
                var value = field.GetValue(parent);
                if (ReferenceEquals(value, old))
                {
                    if (!field.FieldType.IsInstanceOfType(replacement))
                    {
                        throw new PeftException(
                            $"cannot wrap '{qualifiedName}': field '{type.Name}.{field.Name}' is declared as {field.FieldType.Name} " +
                            $"and cannot hold a {replacement.GetType().Name}; declare it as Module<Tensor, Tensor>");
                    }
                    edits.Add(() => field.SetValue(parent, replacement));
                }
                else if (value is IList list && value is not Array)
                {
                    for (var i = 0; i < list.Count; i++)
                    {
                        var index = i;
                        if (ReferenceEquals(list[i], old))
                        {
                            edits.Add(() => list[index] = replacement);
                        }
                        else if (list[i] is ITuple t && t.Length == 2 && ReferenceEquals(t[1], old))
                        {
                            var tupleType = list[i]!.GetType();
                            edits.Add(() => list[index] = Activator.CreateInstance(tupleType, t[0], replacement));
                        }
                    }
                }
                else if (value is IDictionary dict)
                {
                    foreach (var key in dict.Keys.Cast<object>().ToList())
                    {
                        if (ReferenceEquals(dict[key], old))
                        {
                            edits.Add(() => dict[key] = replacement);
                        }
                    }
                }
            }
        }
        var registry = (OrderedDict<string, nn.Module>)s_submodules.GetValue(parent)!;
        edits.Add(() => registry[childName] = replacement);
        foreach (var edit in edits)
        {
            edit();
        }
    }

    /// <summary>The <paramref name="count"/> registered names closest to <paramref name="wanted"/> (for "did you mean" errors).</summary>
    public static IReadOnlyList<string> Nearest(IEnumerable<string> names, string wanted, int count = 5) =>
        names.OrderBy(n => Distance(Last(n), wanted)).ThenBy(n => n.Length).Take(count).ToList();

    private static string Last(string name) => name[(name.LastIndexOf('.') + 1)..];

    private static int Distance(string a, string b)
    {
        var d = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            d[j] = j;
        }
        for (var i = 1; i <= a.Length; i++)
        {
            var prev = d[0];
            d[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var tmp = d[j];
                d[j] = Math.Min(Math.Min(d[j] + 1, d[j - 1] + 1), prev + (a[i - 1] == b[j - 1] ? 0 : 1));
                prev = tmp;
            }
        }
        return d[b.Length];
    }
}
